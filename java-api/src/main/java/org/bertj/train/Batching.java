package org.bertj.train;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Random;

/**
 * Which rows form each batch. Training uses length-grouped batches, as Hugging Face's
 * {@code group_by_length}: a seeded permutation of the rows is cut into mega-batches of 50
 * batches, each mega-batch is sorted by length (longest first) and cut into batches, and the
 * batches are shuffled, so that sentences of similar length share a batch (little padding) while
 * the order stays random. The plan is a pure function of (lengths, batch size, seed, epoch), which
 * is what makes a resumed run see the same data order.
 */
public final class Batching {
  /** Batches per mega-batch (transformers' {@code LengthGroupedSampler} uses 50). */
  public static final int MEGA = 50;

  private Batching() {}

  /** The training batches of one epoch. */
  public static int[][] lengthGrouped(int[] lengths, int batchSize, long seed, int epoch) {
    int n = lengths.length;
    Random r = new Random(Rng.mix(seed, 0x5eedL + epoch));
    Integer[] perm = new Integer[n];
    for (int i = 0; i < n; i++) {
      perm[i] = i;
    }
    Collections.shuffle(Arrays.asList(perm), r);
    List<int[]> batches = new ArrayList<>();
    int mega = MEGA * batchSize;
    for (int s = 0; s < n; s += mega) {
      Integer[] m = Arrays.copyOfRange(perm, s, Math.min(n, s + mega));
      Arrays.sort(m, Comparator.comparingInt((Integer i) -> -lengths[i])); // stable
      for (int b = 0; b < m.length; b += batchSize) {
        int e = Math.min(m.length, b + batchSize);
        int[] batch = new int[e - b];
        for (int i = b; i < e; i++) {
          batch[i - b] = m[i];
        }
        batches.add(batch);
      }
    }
    Collections.shuffle(batches, r);
    return batches.toArray(new int[0][]);
  }

  /** Evaluation batches: rows sorted by length (longest first), so padding is minimal. */
  public static int[][] sortedByLength(int[] lengths, int batchSize) {
    int n = lengths.length;
    Integer[] idx = new Integer[n];
    for (int i = 0; i < n; i++) {
      idx[i] = i;
    }
    Arrays.sort(idx, Comparator.comparingInt((Integer i) -> -lengths[i]));
    int[][] out = new int[(n + batchSize - 1) / batchSize][];
    for (int b = 0; b < out.length; b++) {
      int s = b * batchSize;
      int e = Math.min(n, s + batchSize);
      out[b] = new int[e - s];
      for (int i = s; i < e; i++) {
        out[b][i - s] = idx[i];
      }
    }
    return out;
  }

  /** Seed mixing (SplitMix64), shared by the data order and the dropout seeds. */
  static final class Rng {
    private Rng() {}

    static long mix(long a, long b) {
      long z = a * 0x9E3779B97F4A7C15L + b + 0x632BE59BD9B4E019L;
      z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
      z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
      return z ^ (z >>> 31);
    }
  }
}
