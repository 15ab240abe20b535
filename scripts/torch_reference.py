#!/usr/bin/env python3
"""PyTorch side-by-side figures on the GPU machine, in the same call as bertj's (scripts/gpu-check.sh).

Prints one JSON object: SDPA fp32 attention forward / forward+backward (B 32, 12 heads, T 128,
D 64, padding mask), and a Hugging Face BertForSequenceClassification (bert-base shape, random
init) fp32 training step (forward + backward + clip + fused AdamW) at batch 32, seq 128.
"""
import json
import sys
import time

import torch


def cuda_time(fn, warmup=10, iters=50):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters  # ms


def sdpa_figures():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    b, h, t, d = 32, 12, 128, 64
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(b, h, t, d, device="cuda", generator=g, requires_grad=True) for _ in range(3))
    lengths = torch.randint(t // 4, t + 1, (b,), device="cuda", generator=g)
    keep = torch.arange(t, device="cuda")[None, :] < lengths[:, None]
    mask = keep[:, None, None, :]
    dout = torch.randn(b, h, t, d, device="cuda", generator=g)
    f = torch.nn.functional.scaled_dot_product_attention

    def fwd():
        with torch.no_grad():
            f(q, k, v, attn_mask=mask)

    def fwd_bwd():
        o = f(q, k, v, attn_mask=mask)
        o.backward(dout)

    ms_f = cuda_time(fwd)
    ms_fb = cuda_time(fwd_bwd)
    return {"sdpa_fp32_fwd_us": ms_f * 1e3, "sdpa_fp32_fwd_bwd_us": ms_fb * 1e3,
            "sdpa_fp32_bwd_us": (ms_fb - ms_f) * 1e3}


def sdpa_bf16_figures():
    b, h, t, d = 32, 12, 128, 64
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(b, h, t, d, device="cuda", generator=g, dtype=torch.bfloat16,
                           requires_grad=True) for _ in range(3))
    lengths = torch.randint(t // 4, t + 1, (b,), device="cuda", generator=g)
    keep = torch.arange(t, device="cuda")[None, :] < lengths[:, None]
    mask = keep[:, None, None, :]
    dout = torch.randn(b, h, t, d, device="cuda", generator=g, dtype=torch.bfloat16)
    f = torch.nn.functional.scaled_dot_product_attention

    def fwd():
        with torch.no_grad():
            f(q, k, v, attn_mask=mask)

    def fwd_bwd():
        o = f(q, k, v, attn_mask=mask)
        o.backward(dout)

    ms_f = cuda_time(fwd)
    ms_fb = cuda_time(fwd_bwd)
    return {"sdpa_bf16_fwd_us": ms_f * 1e3, "sdpa_bf16_fwd_bwd_us": ms_fb * 1e3,
            "sdpa_bf16_bwd_us": (ms_fb - ms_f) * 1e3}


def bert_bf16(batch=32, seq=128, train=True):
    """bf16 autocast (sdpa attention), as the DEVICE.md figures."""
    from transformers import BertConfig, BertForSequenceClassification
    cfg = BertConfig(num_labels=2)
    model = BertForSequenceClassification(cfg).cuda()  # transformers 5 defaults to sdpa
    model.train(train)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device="cuda")
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(input_ids=ids, attention_mask=mask)

    ms = cuda_time(step if train else infer, warmup=5, iters=20)
    tag = "hf_%s_bf16_b%d_s%d" % ("train" if train else "infer", batch, seq)
    del model, opt
    torch.cuda.empty_cache()
    return {tag + "_ms": ms, tag + "_samples_per_s": batch * 1e3 / ms}


def bf16_models():
    res = {}
    res.update(bert_bf16(32, 128, True))
    res.update(bert_bf16(256, 128, True))
    res.update(bert_bf16(128, 128, False))
    return res


def bert_train_step(batch=32, seq=128):
    from transformers import BertConfig, BertForSequenceClassification
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = BertConfig(num_labels=2)  # bert-base shape
    model = BertForSequenceClassification(cfg).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device="cuda")
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch,), device="cuda")

    def step():
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    ms = cuda_time(step, warmup=5, iters=20)
    return {"hf_train_fp32_b%d_s%d_ms" % (batch, seq): ms,
            "hf_train_fp32_b%d_s%d_samples_per_s" % (batch, seq): batch * 1e3 / ms}


def copy_bandwidth():
    x = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = cuda_time(lambda: y.copy_(x), warmup=3, iters=20)
    return {"d2d_copy_GBps": 2 * x.numel() / (ms * 1e-3) / 1e9}


if __name__ == "__main__":
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    import os
    parts = {f.__name__: f for f in (copy_bandwidth, sdpa_figures, sdpa_bf16_figures,
                                     bert_train_step, bf16_models)}
    names = os.environ.get("TORCH_PARTS", ",".join(parts)).split(",")
    for part in (parts[n] for n in names if n in parts):
        t0 = time.time()
        try:
            res.update(part())
        except Exception as e:  # report and go on: the other figures are still useful
            res[part.__name__ + "_error"] = repr(e)
        res[part.__name__ + "_wall_s"] = round(time.time() - t0, 1)
    json.dump(res, sys.stdout)
    print()
