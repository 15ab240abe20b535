package org.bertj;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.function.Function;
import java.util.function.IntConsumer;
import org.bertj.io.BertTokenizer;
import org.bertj.io.Encoding;
import org.bertj.io.EncodingBatch;

/**
 * Tokenizes texts (or pairs) and groups them into padded batches of similar length, longest
 * first, so that little compute goes to padding; results are put back in input order.
 */
final class LengthBatcher {

  /** One batch: the input rows it holds, in batch order, and their padded encodings. */
  record Chunk(int[] rows, EncodingBatch batch) {}

  private final BertTokenizer tokenizer;
  private final int maxLength;
  private final int batchSize;

  LengthBatcher(BertTokenizer tokenizer, int maxLength, int batchSize) {
    this.tokenizer = tokenizer;
    this.maxLength = maxLength;
    this.batchSize = batchSize;
  }

  /**
   * Tokenizes (truncating to maxLength) and batches: rows sorted by token count, longest first
   * (ties in input order), cut into batches of at most batchSize, each padded to its longest row.
   *
   * @param texts the texts (none gives no batches)
   * @param pairs second segments, as many as texts, or null
   */
  List<Chunk> plan(List<String> texts, List<String> pairs) {
    if (texts.isEmpty()) {
      return List.of();
    }
    for (int i = 0; i < texts.size(); i++) {
      if (texts.get(i) == null || (pairs != null && pairs.get(i) == null)) {
        throw new IllegalArgumentException("text " + i + " is null");
      }
    }
    List<Encoding> enc = tokenizer.encodeAll(texts, pairs, maxLength);
    Integer[] order = new Integer[enc.size()];
    Arrays.setAll(order, i -> i);
    Arrays.sort(order, Comparator.comparingInt((Integer i) -> -enc.get(i).length()));
    List<Chunk> chunks = new ArrayList<>((order.length + batchSize - 1) / batchSize);
    for (int s = 0; s < order.length; s += batchSize) {
      int e = Math.min(order.length, s + batchSize);
      int[] rows = new int[e - s];
      List<Encoding> part = new ArrayList<>(rows.length);
      for (int i = s; i < e; i++) {
        rows[i - s] = order[i];
        part.add(enc.get(order[i]));
      }
      chunks.add(new Chunk(rows, EncodingBatch.pad(part, tokenizer.getPadId(), 1)));
    }
    return chunks;
  }

  /**
   * Runs {@code perBatch} (one result row per batch row) over the chunks and returns the rows in
   * input order.
   *
   * @param n the number of input rows
   * @param progress told the number of rows done after each batch (may be null)
   */
  static float[][] run(List<Chunk> chunks, int n, Function<Chunk, float[][]> perBatch,
      IntConsumer progress) {
    float[][] out = new float[n][];
    int done = 0;
    for (Chunk c : chunks) {
      float[][] r = perBatch.apply(c);
      for (int i = 0; i < c.rows().length; i++) {
        out[c.rows()[i]] = r[i];
      }
      done += c.rows().length;
      if (progress != null) {
        progress.accept(done);
      }
    }
    return out;
  }
}
