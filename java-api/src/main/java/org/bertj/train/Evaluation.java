package org.bertj.train;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import org.bertj.io.BertConfig.ProblemType;
import org.bertj.model.BertForSequenceClassification;
import org.bertj.model.Batch;

/**
 * The model's outputs on a data file and, when it has labels, the metrics: {@code accuracy},
 * {@code macro_f1}, {@code loss} for classification (multi-label accuracy is subset accuracy,
 * predictions at probability 0.5), {@code mse}, {@code pearson}, {@code loss} for regression; and
 * {@code n}, the number of examples.
 */
public final class Evaluation {
  private final ProblemType problemType;
  private final int n;
  private final int numLabels;
  private final float[] logits;
  private final Map<String, Double> metrics;

  private Evaluation(ProblemType problemType, int n, int numLabels, float[] logits,
      Map<String, Double> metrics) {
    this.problemType = problemType;
    this.n = n;
    this.numLabels = numLabels;
    this.logits = logits;
    this.metrics = Collections.unmodifiableMap(metrics);
  }

  /**
   * Runs the model over every example (inference: no dropout), in length-sorted batches, and
   * computes the metrics when the examples have labels.
   */
  public static Evaluation run(BertForSequenceClassification model, Examples ex, int batchSize) {
    int l = model.config().getNumLabels();
    ProblemType pt = ex.hasLabels() ? ex.labels().problemType()
        : model.config().getEffectiveProblemType();
    float[] logits = new float[ex.size() * l];
    double lossSum = 0;
    for (int[] rows : Batching.sortedByLength(ex.lengths(), batchSize)) {
      Batch b = ex.batch(rows);
      model.forwardInference(b);
      float[] out = model.logitsArray();
      for (int i = 0; i < rows.length; i++) {
        System.arraycopy(out, i * l, logits, rows[i] * l, l);
      }
      if (b.hasLabels()) {
        lossSum += model.loss() * rows.length;
      }
    }
    Map<String, Double> m = new LinkedHashMap<>();
    if (ex.hasLabels()) {
      double loss = lossSum / ex.size();
      switch (pt) {
        case SINGLE_LABEL_CLASSIFICATION -> {
          int[] pred = new int[ex.size()];
          for (int i = 0; i < pred.length; i++) {
            pred[i] = Metrics.argmax(logits, i, l);
          }
          m.put("accuracy", Metrics.accuracy(ex.labelIds(), pred));
          m.put("macro_f1", Metrics.macroF1(ex.labelIds(), pred));
          m.put("loss", loss);
        }
        case MULTI_LABEL_CLASSIFICATION -> {
          float[] pred = new float[logits.length];
          for (int i = 0; i < pred.length; i++) {
            pred[i] = logits[i] > 0f ? 1f : 0f;
          }
          m.put("accuracy", Metrics.subsetAccuracy(ex.targets(), pred, l));
          m.put("macro_f1", Metrics.multiLabelMacroF1(ex.targets(), pred, l));
          m.put("loss", loss);
        }
        default -> {
          m.put("mse", Metrics.mse(ex.targets(), logits));
          m.put("pearson", Metrics.pearson(ex.targets(), logits));
          m.put("loss", loss);
        }
      }
    }
    return new Evaluation(pt, ex.size(), l, logits, m);
  }

  /** The metric that picks the best checkpoint: accuracy, macro-F1 (multi-label) or -mse. */
  public double score() {
    return switch (problemType) {
      case SINGLE_LABEL_CLASSIFICATION -> metrics.get("accuracy");
      case MULTI_LABEL_CLASSIFICATION -> metrics.get("macro_f1");
      default -> -metrics.get("mse");
    };
  }

  /** The name of {@link #score()}'s metric. */
  public String scoreName() {
    return switch (problemType) {
      case SINGLE_LABEL_CLASSIFICATION -> "accuracy";
      case MULTI_LABEL_CLASSIFICATION -> "macro_f1";
      default -> "mse";
    };
  }

  public ProblemType problemType() {
    return problemType;
  }

  public int n() {
    return n;
  }

  /** (n, num_labels) logits, in the file's row order. */
  public float[] logits() {
    return logits;
  }

  public int numLabels() {
    return numLabels;
  }

  /** The metrics (empty without labels), in a fixed order. */
  public Map<String, Double> metrics() {
    return metrics;
  }

  /** One metric, or NaN when absent. */
  public double get(String name) {
    return metrics.getOrDefault(name, Double.NaN);
  }

  /** The metrics and {@code n}, as the CLI prints them (NaN becomes null). */
  public Map<String, Object> toJson() {
    Map<String, Object> out = new LinkedHashMap<>();
    metrics.forEach((k, v) -> out.put(k, Double.isFinite(v) ? v : null));
    out.put("n", n);
    return out;
  }

  @Override
  public String toString() {
    return toJson().toString();
  }
}
