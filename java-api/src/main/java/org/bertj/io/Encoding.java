package org.bertj.io;

import java.util.Arrays;

/**
 * One tokenized example, unpadded: {@code [CLS] a [SEP]} or {@code [CLS] a [SEP] b [SEP]}.
 *
 * @param inputIds the token ids
 * @param tokenTypeIds 0 for the first segment (with its {@code [CLS]} and {@code [SEP]}), 1 for the
 *     second
 */
public record Encoding(int[] inputIds, int[] tokenTypeIds) {

    /** Checks that both arrays have the same length. */
    public Encoding {
        if (inputIds.length != tokenTypeIds.length) {
            throw new IllegalArgumentException(
                    "inputIds has " + inputIds.length + " ids but tokenTypeIds " + tokenTypeIds.length);
        }
    }

    /** @return the number of tokens, special tokens included */
    public int length() {
        return inputIds.length;
    }

    /** @return an attention mask for this example alone: all ones */
    public int[] attentionMask() {
        int[] m = new int[inputIds.length];
        Arrays.fill(m, 1);
        return m;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Encoding e
                && Arrays.equals(inputIds, e.inputIds)
                && Arrays.equals(tokenTypeIds, e.tokenTypeIds);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(inputIds) * 31 + Arrays.hashCode(tokenTypeIds);
    }

    @Override
    public String toString() {
        return "Encoding{inputIds=" + Arrays.toString(inputIds) + ", tokenTypeIds="
                + Arrays.toString(tokenTypeIds) + "}";
    }
}
