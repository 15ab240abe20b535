package org.bertj.model;

/** The loss of {@link BertForSequenceClassification}, as Hugging Face's {@code problem_type}. */
public enum ProblemType {
  /** MSE, mean over all elements (usually num_labels 1). */
  REGRESSION("regression"),
  /** Softmax cross-entropy over integer labels, mean over the labels that are not ignored (< 0). */
  SINGLE_LABEL_CLASSIFICATION("single_label_classification"),
  /** BCE with logits over float targets (B, num_labels), mean over all elements. */
  MULTI_LABEL_CLASSIFICATION("multi_label_classification");

  private final String hfName;

  ProblemType(String hfName) {
    this.hfName = hfName;
  }

  /** The string config.json uses. */
  public String hfName() {
    return hfName;
  }

  /** Parses config.json's string; null gives null (decided from the labels, as transformers). */
  public static ProblemType fromHf(String s) {
    if (s == null) {
      return null;
    }
    for (ProblemType p : values()) {
      if (p.hfName.equals(s)) {
        return p;
      }
    }
    throw new IllegalArgumentException("unknown problem_type '" + s + "'");
  }

  /**
   * Hugging Face's rule when problem_type is null: num_labels 1 is regression; more labels are
   * single-label classification for integer labels and multi-label for float labels.
   */
  public static ProblemType infer(int numLabels, boolean integerLabels) {
    if (numLabels == 1) {
      return REGRESSION;
    }
    return integerLabels ? SINGLE_LABEL_CLASSIFICATION : MULTI_LABEL_CLASSIFICATION;
  }
}
