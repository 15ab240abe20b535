package org.bertj.model;

/**
 * A batch of B sequences of T tokens, flattened row-major (index b*T + t).
 *
 * @param inputIds token ids (B*T)
 * @param tokenTypeIds segment ids (B*T), or null for all 0
 * @param attentionMask 1 = real token, 0 = padding (B*T), or null for all 1
 * @param batchSize B
 * @param seqLen T
 * @param labels integer labels (B) for single-label classification (a label < 0 is ignored), or
 *     null
 * @param floatLabels float targets (B*num_labels) for multi-label classification or regression,
 *     or null
 */
public record Batch(int[] inputIds, int[] tokenTypeIds, int[] attentionMask, int batchSize,
    int seqLen, int[] labels, float[] floatLabels) {

  /** Checks the array lengths (token values are checked against the model in forward). */
  public Batch {
    if (batchSize <= 0 || seqLen <= 0) {
      throw new IllegalArgumentException("batch size and sequence length must be > 0, got "
          + batchSize + " x " + seqLen);
    }
    long n = (long) batchSize * seqLen;
    length("inputIds", inputIds, n, false);
    length("tokenTypeIds", tokenTypeIds, n, true);
    length("attentionMask", attentionMask, n, true);
    if (labels != null && floatLabels != null) {
      throw new IllegalArgumentException("give either integer labels or float labels, not both");
    }
    if (labels != null && labels.length != batchSize) {
      throw new IllegalArgumentException("labels has " + labels.length + " entries for a batch of "
          + batchSize);
    }
    if (floatLabels != null && (floatLabels.length == 0 || floatLabels.length % batchSize != 0)) {
      throw new IllegalArgumentException("floatLabels has " + floatLabels.length
          + " entries, not a multiple of the batch size " + batchSize);
    }
    if (attentionMask != null) {
      for (int i = 0; i < attentionMask.length; i++) {
        if (attentionMask[i] != 0 && attentionMask[i] != 1) {
          throw new IllegalArgumentException("attentionMask must be 0 or 1, got "
              + attentionMask[i] + " at batch row " + i / seqLen + ", position " + i % seqLen);
        }
      }
    }
  }

  private static void length(String name, int[] a, long n, boolean nullable) {
    if (a == null) {
      if (!nullable) {
        throw new IllegalArgumentException(name + " must not be null");
      }
      return;
    }
    if (a.length != n) {
      throw new IllegalArgumentException(name + " has " + a.length + " entries, expected B*T = "
          + n);
    }
  }

  /** A batch without labels (inference). */
  public static Batch of(int[] inputIds, int[] tokenTypeIds, int[] attentionMask, int batchSize,
      int seqLen) {
    return new Batch(inputIds, tokenTypeIds, attentionMask, batchSize, seqLen, null, null);
  }

  /** This batch with integer labels. */
  public Batch withLabels(int[] labels) {
    return new Batch(inputIds, tokenTypeIds, attentionMask, batchSize, seqLen, labels, null);
  }

  /** This batch with float labels (B*num_labels). */
  public Batch withFloatLabels(float[] floatLabels) {
    return new Batch(inputIds, tokenTypeIds, attentionMask, batchSize, seqLen, null, floatLabels);
  }

  /** Whether labels of either kind are present. */
  public boolean hasLabels() {
    return labels != null || floatLabels != null;
  }

  /** B*T. */
  public int tokens() {
    return batchSize * seqLen;
  }
}
