package org.bertj.io;

import java.util.Arrays;
import java.util.List;

/**
 * A padded batch of tokenized examples, as the model takes it: three row-major {@code (B, T)} int
 * arrays, {@code T} being the longest example of the batch (rounded up to a multiple, if asked).
 * Padding is on the right: {@code inputIds} hold the pad id there, {@code tokenTypeIds} 0 and {@code
 * attentionMask} 0; real tokens have mask 1.
 *
 * @param batchSize {@code B}, the number of examples
 * @param seqLen {@code T}, the padded length
 * @param inputIds {@code (B, T)} token ids
 * @param tokenTypeIds {@code (B, T)} segment ids
 * @param attentionMask {@code (B, T)} 1 for a real token, 0 for padding
 */
public record EncodingBatch(
        int batchSize, int seqLen, int[] inputIds, int[] tokenTypeIds, int[] attentionMask) {

    /** Checks the array lengths against {@code B * T}. */
    public EncodingBatch {
        int n = Math.multiplyExact(batchSize, seqLen);
        if (inputIds.length != n || tokenTypeIds.length != n || attentionMask.length != n) {
            throw new IllegalArgumentException("arrays must hold B*T = " + n + " ints");
        }
    }

    /**
     * Pads examples on the right to the longest one.
     *
     * @param examples the examples (at least one)
     * @param padId the id written into padded positions
     * @param padToMultipleOf round {@code T} up to a multiple of this (1 for none)
     * @return the batch
     */
    public static EncodingBatch pad(List<Encoding> examples, int padId, int padToMultipleOf) {
        if (padToMultipleOf < 1) {
            throw new IllegalArgumentException("padToMultipleOf must be at least 1");
        }
        int b = examples.size();
        int t = 0;
        for (Encoding e : examples) {
            t = Math.max(t, e.length());
        }
        t = (t + padToMultipleOf - 1) / padToMultipleOf * padToMultipleOf;
        int[] ids = new int[b * t];
        int[] types = new int[b * t];
        int[] mask = new int[b * t];
        for (int i = 0; i < b; i++) {
            Encoding e = examples.get(i);
            int off = i * t;
            System.arraycopy(e.inputIds(), 0, ids, off, e.length());
            System.arraycopy(e.tokenTypeIds(), 0, types, off, e.length());
            Arrays.fill(mask, off, off + e.length(), 1);
            Arrays.fill(ids, off + e.length(), off + t, padId);
        }
        return new EncodingBatch(b, t, ids, types, mask);
    }

    /**
     * @param row an example index
     * @return its number of real (unpadded) tokens
     */
    public int length(int row) {
        int n = 0;
        for (int j = 0; j < seqLen; j++) {
            n += attentionMask[row * seqLen + j];
        }
        return n;
    }

    /**
     * @param row an example index
     * @return a copy of that row of {@code inputIds} ({@code T} ids, padding included)
     */
    public int[] inputIds(int row) {
        return Arrays.copyOfRange(inputIds, row * seqLen, (row + 1) * seqLen);
    }

    /**
     * @param row an example index
     * @return a copy of that row of {@code tokenTypeIds}
     */
    public int[] tokenTypeIds(int row) {
        return Arrays.copyOfRange(tokenTypeIds, row * seqLen, (row + 1) * seqLen);
    }

    /**
     * @param row an example index
     * @return a copy of that row of {@code attentionMask}
     */
    public int[] attentionMask(int row) {
        return Arrays.copyOfRange(attentionMask, row * seqLen, (row + 1) * seqLen);
    }

    /** @return {@code inputIds} as {@code B} rows of {@code T} */
    public int[][] inputIds2d() {
        return rows(inputIds);
    }

    /** @return {@code tokenTypeIds} as {@code B} rows of {@code T} */
    public int[][] tokenTypeIds2d() {
        return rows(tokenTypeIds);
    }

    /** @return {@code attentionMask} as {@code B} rows of {@code T} */
    public int[][] attentionMask2d() {
        return rows(attentionMask);
    }

    private int[][] rows(int[] flat) {
        int[][] r = new int[batchSize][];
        for (int i = 0; i < batchSize; i++) {
            r[i] = Arrays.copyOfRange(flat, i * seqLen, (i + 1) * seqLen);
        }
        return r;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof EncodingBatch e
                && batchSize == e.batchSize
                && seqLen == e.seqLen
                && Arrays.equals(inputIds, e.inputIds)
                && Arrays.equals(tokenTypeIds, e.tokenTypeIds)
                && Arrays.equals(attentionMask, e.attentionMask);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(inputIds) * 31 + batchSize;
    }

    @Override
    public String toString() {
        return "EncodingBatch{B=" + batchSize + ", T=" + seqLen + "}";
    }
}
