package org.bertj;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What {@link TextClassifier} predicts for one text.
 *
 * <ul>
 *   <li>Single-label classification: {@code probabilities} is the softmax of the logits (sums to 1),
 *       {@code label}/{@code index} the most probable label.
 *   <li>Multi-label classification: {@code probabilities} is the sigmoid of each logit (each label
 *       on its own); {@code label}/{@code index} the most probable one; see {@link #labelsAbove}.
 *   <li>Regression: {@code probabilities} is null, {@code label} null, {@code index} -1; the
 *       predicted values are {@code logits} ({@link #value()} for one target).
 * </ul>
 *
 * @param index the id of the predicted label, or -1 for regression
 * @param label its name (from {@code id2label}), or null for regression
 * @param probabilities one per label in id order, or null for regression
 * @param logits the raw outputs, one per label
 * @param labels the label names in id order
 */
public record Prediction(int index, String label, float[] probabilities, float[] logits,
    List<String> labels) {

  /**
   * @param name a label name
   * @return its probability
   * @throws IllegalArgumentException when there is no such label or this is a regression
   */
  public float probability(String name) {
    int i = labels.indexOf(name);
    if (i < 0 || probabilities == null) {
      throw new IllegalArgumentException(probabilities == null ? "a regression has no probabilities"
          : "no label '" + name + "' (labels: " + labels + ")");
    }
    return probabilities[i];
  }

  /**
   * @param threshold a probability
   * @return the labels whose probability is at least {@code threshold}, in id order (for
   *     multi-label models; empty for a regression)
   */
  public List<String> labelsAbove(float threshold) {
    List<String> out = new ArrayList<>();
    if (probabilities != null) {
      for (int i = 0; i < probabilities.length; i++) {
        if (probabilities[i] >= threshold) {
          out.add(labels.get(i));
        }
      }
    }
    return out;
  }

  /** @return the first output: the predicted value of a single-target regression */
  public float value() {
    return logits[0];
  }

  @Override
  public String toString() {
    return index < 0 ? "Prediction{value=" + Arrays.toString(logits) + "}"
        : "Prediction{" + label + ", probabilities=" + Arrays.toString(probabilities) + "}";
  }
}
