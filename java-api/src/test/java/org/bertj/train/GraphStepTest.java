package org.bertj.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Path;
import java.util.SplittableRandom;
import org.bertj.backend.Backend;
import org.bertj.backend.Precision;
import org.bertj.model.Batch;
import org.bertj.model.BertForSequenceClassification;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Graph replay of the training step against the eager step: two models from the same weights
 * take the same steps (two batch shapes in turn, one of them padded enough for padding removal;
 * each step its own seed and learning rate, dropout on), one eagerly, one through
 * {@link TrainStep}'s graphs (on the CPU: the recorded calls replayed). Everything a captured
 * step bakes in that should change per step (seed, lr, step number, batch data) would make the
 * replayed steps drift; the test asks for the same parameters and losses, bit for bit, after
 * every step.
 */
class GraphStepTest {
  @TempDir static Path tmp;
  static Path modelDir;

  @BeforeAll
  static void setUp() {
    modelDir = TinyTask.modelDir(tmp.resolve("tiny"), 0.1);
  }

  /**
   * Batch i of a fixed sequence of two shapes: (4, 12) without a mask; every third (3, 16) with
   * lengths 6, 10, 14 (37% pads: padding removal, the same 30 real tokens each time, so that its
   * graph is replayed too). Token ids, types and labels differ from batch to batch.
   */
  static Batch batch(int i, int vocab) {
    SplittableRandom r = new SplittableRandom(1000 + i);
    boolean padded = i % 3 == 2;
    int b = padded ? 3 : 4;
    int t = padded ? 16 : 12;
    int[] ids = new int[b * t];
    int[] tt = new int[b * t];
    int[] mask = padded ? new int[b * t] : null;
    for (int s = 0; s < b; s++) {
      int len = padded ? 6 + 4 * s : t; // the same real-token count in every padded batch
      for (int j = 0; j < t; j++) {
        boolean real = j < len;
        ids[s * t + j] = real ? (j == 0 ? 2 : 5 + r.nextInt(vocab - 5)) : 0;
        tt[s * t + j] = real && j > len / 2 ? 1 : 0;
        if (mask != null) {
          mask[s * t + j] = real ? 1 : 0;
        }
      }
    }
    int[] labels = new int[b];
    for (int s = 0; s < b; s++) {
      labels[s] = r.nextInt(2);
    }
    return Batch.of(ids, tt, mask, b, t).withLabels(labels);
  }

  /** Eager and graph steps agree (bit for bit when exact, else within rel); returns replays. */
  static long compare(Backend be, Path modelDir, Precision p, boolean exact, double rel) {
    int steps = 9;
    try (BertForSequenceClassification eager = BertForSequenceClassification.fromPretrained(be,
            modelDir, 5);
        BertForSequenceClassification graph = BertForSequenceClassification.fromPretrained(be,
            modelDir, 5);
        AdamW oe = new AdamW(eager.parameters(), 0.9f, 0.999f, 1e-8f, 0.01f);
        AdamW og = new AdamW(graph.parameters(), 0.9f, 0.999f, 1e-8f, 0.01f);
        TrainStep se = new TrainStep(eager, oe, 1f, false);
        TrainStep sg = new TrainStep(graph, og, 1f, true)) {
      eager.parameters().setPrecision(p);
      graph.parameters().setPrecision(p);
      int vocab = eager.config().getVocabSize();
      for (int i = 0; i < steps; i++) {
        Batch x = batch(i, vocab);
        float lr = 1e-3f * (1 + i % 4);
        long seed = 77L * i + 3;
        se.run(x, lr, seed);
        sg.run(x, lr, seed);
        float[] we = be.download(eager.parameters().values());
        float[] wg = be.download(graph.parameters().values());
        double le = eager.loss();
        double lg = graph.loss();
        if (exact) {
          assertArrayEquals(we, wg, "parameters after step " + i);
          assertEquals(le, lg, 0.0, "loss of step " + i);
        } else {
          for (int k = 0; k < we.length; k++) {
            if (Math.abs(we[k] - wg[k]) > rel * Math.max(1e-3, Math.abs(we[k]))) {
              fail("parameter " + k + " after step " + i + ": eager " + we[k] + ", graph " + wg[k]);
            }
          }
          assertEquals(le, lg, rel * Math.abs(le), "loss of step " + i);
        }
      }
      assertEquals(steps, oe.stepCount());
      assertEquals(steps, og.stepCount());
      GraphCacheStats s = GraphCacheStats.of(sg);
      assertEquals(0, s.failures(), "failed captures");
      // one graph per batch shape, and in fp32 the first shape once more: the second shape's
      // larger workspace frees the first's memory, which invalidates its graph
      assertEquals(p == Precision.FP32 ? 3 : 2, s.captures(), "captures");
      assertTrue(s.replays() >= 5, "replays " + s.replays());
      return s.replays();
    }
  }

  record GraphCacheStats(long eager, long captures, long replays, long failures) {
    static GraphCacheStats of(TrainStep s) {
      var g = s.graphs();
      return new GraphCacheStats(g.eagerRuns(), g.captures(), g.replays(), g.failures());
    }
  }

  @ParameterizedTest
  @EnumSource(value = Precision.class, names = {"FP32", "BF16"})
  void replayedStepsEqualEagerStepsOnTheCpu(Precision p) {
    try (Backend be = TinyTask.cpu()) {
      compare(be, modelDir, p, true, 0);
    }
  }
}
