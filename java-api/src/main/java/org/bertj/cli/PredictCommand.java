package org.bertj.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.bertj.io.BertConfig.ProblemType;
import org.bertj.train.Evaluation;
import org.bertj.train.Examples;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code bertj predict}: one JSON line of predictions per row of a file. */
@Command(name = "predict", mixinStandardHelpOptions = true, sortOptions = false,
    description = {"Runs a fine-tuned model over a file (labels not needed) and prints one JSON "
        + "object per row, in order: {\"label\": NAME, \"probabilities\": {NAME: p, ...}, "
        + "\"input_ids\": [...]} (multi-label: \"labels\": [names with p > 0.5]; regression: "
        + "\"value\")."})
public final class PredictCommand implements Callable<Integer> {
  @Option(names = "--model", paramLabel = "DIR", required = true,
      description = "The fine-tuned model folder.")
  Path model;

  @Option(names = "--data", paramLabel = "FILE", required = true,
      description = "Texts to classify (.tsv, .csv, .jsonl).")
  Path data;

  @Mixin DataOptions opts;

  @Override
  public Integer call() {
    opts.check();
    try (EvaluateCommand.Loaded m = EvaluateCommand.Loaded.open(model, opts)) {
      Examples ex = Examples.encode(Examples.read(data), opts.columns(), m.tokenizer, m.maxLen,
          null, -1);
      if (ex.truncated() > 0) {
        System.err.println("bertj: " + ex.truncated() + " examples were truncated to " + m.maxLen
            + " tokens");
      }
      Evaluation ev = Evaluation.run(m.model, ex, opts.batchSize);
      PrintStream out = System.out;
      int l = ev.numLabels();
      float[] z = ev.logits();
      ProblemType pt = m.labels.problemType();
      for (int i = 0; i < ex.size(); i++) {
        Map<String, Object> row = new LinkedHashMap<>();
        if (pt == ProblemType.REGRESSION) {
          if (l == 1) {
            row.put("value", z[i]);
          } else {
            List<Float> v = new ArrayList<>();
            for (int j = 0; j < l; j++) {
              v.add(z[i * l + j]);
            }
            row.put("values", v);
          }
        } else {
          double[] p = new double[l];
          if (pt == ProblemType.MULTI_LABEL_CLASSIFICATION) {
            for (int j = 0; j < l; j++) {
              p[j] = 1.0 / (1.0 + Math.exp(-z[i * l + j]));
            }
          } else {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < l; j++) {
              max = Math.max(max, z[i * l + j]);
            }
            double s = 0;
            for (int j = 0; j < l; j++) {
              p[j] = Math.exp(z[i * l + j] - max);
              s += p[j];
            }
            for (int j = 0; j < l; j++) {
              p[j] /= s;
            }
          }
          Map<String, Double> probs = new LinkedHashMap<>();
          for (int j = 0; j < l; j++) {
            probs.put(m.labels.name(j), p[j]);
          }
          if (pt == ProblemType.MULTI_LABEL_CLASSIFICATION) {
            List<String> on = new ArrayList<>();
            for (int j = 0; j < l; j++) {
              if (p[j] > 0.5) {
                on.add(m.labels.name(j));
              }
            }
            row.put("labels", on);
          } else {
            int best = 0;
            for (int j = 1; j < l; j++) {
              if (p[j] > p[best]) {
                best = j;
              }
            }
            row.put("label", m.labels.name(best));
          }
          row.put("probabilities", probs);
        }
        row.put("input_ids", ex.encoding(i).inputIds());
        out.println(Json.line(row));
      }
      out.flush();
    }
    return 0;
  }
}
