#!/usr/bin/env python3
"""Checks that folders written by `bertj finetune` load in Hugging Face transformers and give the
same outputs as bertj.

For each DIR: DIR holds the fine-tuned model and DIR/predictions.jsonl, the output of
`bertj predict --model DIR --data FILE`. transformers' BertForSequenceClassification.from_pretrained(DIR)
runs on each row's input_ids (float64) and its softmax (single-label), sigmoid (multi-label) or value
(regression) is compared with bertj's; the largest difference must be under 1e-5.

    python3 scripts/check_hf_load.py runs/a runs/b     # needs torch + transformers (GPU machine)
"""
import json
import sys

import torch
from transformers import BertForSequenceClassification


def check(d):
    m = BertForSequenceClassification.from_pretrained(d).eval().double()
    pt = m.config.problem_type
    names = [m.config.id2label[i] for i in range(m.config.num_labels)]
    worst = 0.0
    rows = [json.loads(line) for line in open(f"{d}/predictions.jsonl")]
    for r in rows:
        with torch.no_grad():
            z = m(input_ids=torch.tensor([r["input_ids"]])).logits[0]
        if pt == "regression":
            got, ref = [r["value"]] if "value" in r else r["values"], z.tolist()
        elif pt == "multi_label_classification":
            got, ref = [r["probabilities"][n] for n in names], torch.sigmoid(z).tolist()
        else:
            got, ref = [r["probabilities"][n] for n in names], torch.softmax(z, -1).tolist()
        worst = max(worst, max(abs(a - b) for a, b in zip(got, ref)))
    good = worst < 1e-5
    print(f"{d}: problem_type={pt} labels={names} arch={m.config.architectures} rows={len(rows)} "
          f"max|bertj-transformers|={worst:.2e} {'OK' if good else 'FAIL'}")
    return good


if __name__ == "__main__":
    results = [check(d) for d in sys.argv[1:]]
    sys.exit(0 if results and all(results) else 1)
