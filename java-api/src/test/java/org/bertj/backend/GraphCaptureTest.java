package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * The graph capture rules ({@link Backend#captureGraph}) on the CPU backend's emulation: captured
 * ops run only when replayed, on the data their tensors hold then; host work inside a capture is
 * refused and the capture ends; a free invalidates graphs; the step scalars reach a replay.
 * {@code GraphCudaTest} runs the CUDA side.
 */
class GraphCaptureTest {
  static float[] seq(int n, float scale) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = scale * (i + 1);
    }
    return v;
  }

  /** Captured copy + axpy: nothing runs at capture; each replay reads x as it is then. */
  static void capturedOpsRunOnReplay(Backend be) {
    try (Tensor x = be.alloc(DType.F32, 8); Tensor y = be.alloc(DType.F32, 8)) {
      be.upload(x, seq(8, 1f));
      try (DeviceGraph g = be.captureGraph(() -> {
        be.copy(y, x);
        be.axpy(y, x, 2f);
      })) {
        assertArrayEquals(new float[8], be.download(y), "captured ops ran at capture");
        g.replay();
        assertArrayEquals(seq(8, 3f), be.download(y));
        be.upload(x, seq(8, -0.5f));
        g.replay();
        assertArrayEquals(seq(8, -1.5f), be.download(y));
        assertTrue(g.isValid());
        assertTrue(g.size() >= 2, "nodes " + g.size());
      }
    }
  }

  /** Each host operation inside a capture throws, the capture ends, and the backend works on. */
  static void hostWorkIsRefused(Backend be) {
    try (Tensor x = be.alloc(DType.F32, 4); Tensor owned = be.alloc(DType.F32, 4)) {
      List<Consumer<Backend>> bad = List.of(
          b -> b.alloc(DType.F32, 4),
          b -> b.upload(x, new float[4]),
          b -> b.download(x),
          b -> b.synchronize(),
          b -> b.free(owned),
          b -> b.captureGraph(() -> {}));
      for (Consumer<Backend> op : bad) {
        assertThrows(GraphCaptureException.class, () -> be.captureGraph(() -> {
          be.fill(x, 1f);
          op.accept(be);
        }));
        assertFalse(be.isCapturing());
      }
      be.fill(x, 2f);
      assertArrayEquals(new float[] {2f, 2f, 2f, 2f}, be.download(x));
      RuntimeException mine = new RuntimeException("from the body");
      assertEquals(mine, assertThrows(RuntimeException.class,
          () -> be.captureGraph(() -> { throw mine; })));
      assertFalse(be.isCapturing());
    }
  }

  /** Freeing any tensor after a capture invalidates the graph; replay then throws. */
  static void aFreeInvalidates(Backend be) {
    try (Tensor x = be.alloc(DType.F32, 4)) {
      DeviceGraph g = be.captureGraph(() -> be.fill(x, 3f));
      g.replay();
      be.alloc(DType.F32, 2).close();
      assertFalse(g.isValid());
      assertThrows(IllegalStateException.class, g::replay);
      g.close();
    }
  }

  /**
   * A captured dropout and AdamW read seed, lr and step from the step scalars: replayed after
   * new scalars are uploaded, they equal the eager ops with the new values.
   */
  static void replaysReadTheStepScalars(Backend be) {
    int n = 1000;
    try (Tensor x = be.alloc(DType.F32, n); Tensor y = be.alloc(DType.F32, n);
        Tensor ref = be.alloc(DType.F32, n); Tensor sc = be.alloc(DType.I32, StepScalars.INTS);
        Tensor p = be.alloc(DType.F32, n); Tensor g = be.alloc(DType.F32, n);
        Tensor m = be.alloc(DType.F32, n); Tensor v = be.alloc(DType.F32, n);
        Tensor pr = be.alloc(DType.F32, n); Tensor mr = be.alloc(DType.F32, n);
        Tensor vr = be.alloc(DType.F32, n)) {
      be.upload(x, seq(n, 0.01f));
      be.upload(g, seq(n, -0.002f));
      be.upload(p, seq(n, 0.1f));
      be.upload(pr, seq(n, 0.1f));
      be.upload(sc, StepScalars.pack(11L, 1e-3f, 1));
      be.useStepScalars(sc);
      DeviceGraph graph;
      try {
        graph = be.captureGraph(() -> {
          be.dropoutForward(y, x, 0.25f, 11L, 64L);
          be.adamw(p, g, m, v, 0, n / 2, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, null);
        });
      } finally {
        be.useStepScalars(null);
      }
      try (DeviceGraph gr = graph) {
        for (int step = 1; step <= 3; step++) {
          long seed = 1000L * step + 7;
          float lr = 1e-3f * step;
          be.upload(sc, StepScalars.pack(seed, lr, step));
          gr.replay();
          be.dropoutForward(ref, x, 0.25f, seed, 64L);
          be.adamw(pr, g, mr, vr, 0, n / 2, lr, 0.9f, 0.999f, 1e-8f, 0.01f, step, null);
          assertArrayEquals(be.download(ref), be.download(y), "dropout, step " + step);
          assertArrayEquals(be.download(pr), be.download(p), "adamw, step " + step);
        }
      }
    }
  }

  @Test
  void capturedOpsRunOnlyOnReplayOnTheCpu() {
    try (Backend be = new CpuBackend()) {
      capturedOpsRunOnReplay(be);
    }
  }

  @Test
  void hostWorkInsideACaptureIsRefusedOnTheCpu() {
    try (Backend be = new CpuBackend()) {
      hostWorkIsRefused(be);
    }
  }

  @Test
  void aFreeInvalidatesGraphsOnTheCpu() {
    try (Backend be = new CpuBackend()) {
      aFreeInvalidates(be);
    }
  }

  @Test
  void replaysReadTheStepScalarsOnTheCpu() {
    try (Backend be = new CpuBackend()) {
      replaysReadTheStepScalars(be);
    }
  }

  @Test
  void graphCacheWarmsUpCapturesAndReplays() {
    try (Backend be = new CpuBackend(); Tensor x = be.alloc(DType.F32, 4);
        GraphCache gc = new GraphCache(be, true)) {
      int[] javaRuns = {0};
      for (int i = 0; i < 5; i++) {
        gc.run("k", () -> {
          javaRuns[0]++;
          be.axpy(x, x, 1f); // doubles x
        });
      }
      // warm-up (eager), capture (Java ran, nothing queued) + replay, then 3 replays
      assertEquals(2, javaRuns[0]);
      assertEquals(1, gc.eagerRuns());
      assertEquals(1, gc.captures());
      assertEquals(4, gc.replays());
      be.fill(x, 1f);
      gc.run("k", () -> be.axpy(x, x, 1f));
      assertArrayEquals(new float[] {2f, 2f, 2f, 2f}, be.download(x));
      // a capture failure: that key runs eagerly from then on
      gc.run("bad", () -> be.axpy(x, x, 1f));
      gc.run("bad", () -> {
        be.axpy(x, x, 1f);
        be.download(x);
      });
      assertEquals(1, gc.failures());
      assertArrayEquals(new float[] {8f, 8f, 8f, 8f}, be.download(x));
    }
  }
}
