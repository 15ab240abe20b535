package org.bertj.backend;

import static org.bertj.backend.OpTestBase.bf16Bits;
import static org.bertj.backend.OpTestBase.randn;
import static org.bertj.backend.OpTestBase.rawBits;
import static org.bertj.backend.OpTestBase.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import java.util.stream.IntStream;
import org.bertj.backend.OpTestBase.Arena;

/**
 * The checks of {@link Backend#useStepScalars} on one backend, per op family (the CPU's in
 * {@link OpStepScalarsTest}, CUDA's in {@link CudaVsCpuTest}): an op run while the step scalars
 * hold {@link #SEED}, {@link #LR}, {@link #STEP}, with wrong value arguments, gives the bits of
 * its value path with those values; after useStepScalars(null) the value arguments count again.
 */
final class StepScalarsChecks {
  static final long SEED = 0x243F6A8885A308D3L;
  static final float LR = 2e-3f;
  static final int STEP = 37;
  // valid but wrong value arguments: the ops must ignore them while the step scalars are set
  private static final long WRONG_SEED = 77L;
  private static final float WRONG_LR = 0.5f;
  private static final int WRONG_STEP = 3;

  private StepScalarsChecks() {}

  /** One run of an op on fresh copies of its inputs (in a): the raw bits of its outputs. */
  interface Run {
    int[] run(Arena a, long seed, float lr, int step);
  }

  static void check(Backend be, String what, Run op) {
    int[] want;
    int[] wrong;
    int[] got;
    int[] again;
    try (Arena a = new Arena(be)) {
      want = op.run(a, SEED, LR, STEP);
      wrong = op.run(a, WRONG_SEED, WRONG_LR, WRONG_STEP);
      Tensor sc = a.of(StepScalars.pack(SEED, LR, STEP));
      be.useStepScalars(sc);
      try {
        assertSame(sc, be.stepScalars());
        got = op.run(a, WRONG_SEED, WRONG_LR, WRONG_STEP);
      } finally {
        be.useStepScalars(null);
      }
      assertNull(be.stepScalars());
      again = op.run(a, WRONG_SEED, WRONG_LR, WRONG_STEP);
    }
    assertFalse(Arrays.equals(want, wrong), what + ": the wrong arguments change the result");
    assertArrayEquals(want, got, what + ": with step scalars = the value path with their values");
    assertArrayEquals(wrong, again, what + ": after useStepScalars(null) the arguments count");
  }

  /** The raw bits of the tensors' values, one after the other (BF16 widened exactly). */
  static int[] bits(Tensor... ts) {
    return Arrays.stream(ts)
        .flatMapToInt(t -> IntStream.of(t.dtype() == DType.BF16 ? bf16Bits(t)
            : rawBits(t.toFloatArray())))
        .toArray();
  }

  /** dropoutForward, dropoutBackward (in place) and philoxUniform over n elements. */
  static void dropout(Backend be, int n) {
    float[] x = randn(new Random(n), n);
    check(be, "dropoutForward n" + n, (a, seed, lr, step) -> {
      Tensor out = a.f32(n);
      be.dropoutForward(out, a.of(x), 0.1f, seed, 3);
      return bits(out);
    });
    check(be, "dropoutBackward n" + n, (a, seed, lr, step) -> {
      Tensor d = a.of(x);
      be.dropoutBackward(d, d, 0.3f, seed, 0);
      return bits(d);
    });
    check(be, "philoxUniform n" + n, (a, seed, lr, step) -> {
      Tensor u = a.f32(n);
      be.philoxUniform(u, seed, 5);
      return bits(u);
    });
  }

  /**
   * dropoutLayerNormForward (every output, outLow too) and dropoutLayerNormBackward (dy, dyLow
   * and dbiasY too) after a forward with the same seed, p = 0.2.
   */
  static void dropoutLayerNorm(Backend be, int n, int c) {
    Random r = new Random(31L * n + c);
    int nc = n * c;
    float[] y = randn(r, nc, 2.0), res = randn(r, nc), gamma = uniform(r, c, 0.5, 1.5);
    float[] beta = randn(r, c), dout = randn(r, nc), dg = randn(r, c), db = randn(r, c);
    float[] dby = randn(r, c);
    float p = 0.2f;
    long offset = 1000;
    String shape = " n" + n + " c" + c;
    check(be, "dropoutLayerNormForward" + shape, (a, seed, lr, step) -> {
      Tensor out = a.f32(nc), low = a.bf16(nc), mean = a.f32(n), rstd = a.f32(n), h = a.f32(nc);
      be.dropoutLayerNormForward(out, low, mean, rstd, h, a.of(y), a.of(res), a.of(gamma),
          a.of(beta), n, c, 1e-12f, p, seed, offset);
      return bits(out, low, mean, rstd, h);
    });
    check(be, "dropoutLayerNormBackward" + shape, (a, seed, lr, step) -> {
      Tensor out = a.f32(nc), mean = a.f32(n), rstd = a.f32(n), h = a.f32(nc), g = a.of(gamma);
      be.dropoutLayerNormForward(out, null, mean, rstd, h, a.of(y), a.of(res), g, a.of(beta), n,
          c, 1e-12f, p, seed, offset);
      Tensor dh = a.f32(nc), dy = a.f32(nc), dyLow = a.bf16(nc), tdg = a.of(dg), tdb = a.of(db);
      Tensor tdby = a.of(dby);
      be.dropoutLayerNormBackward(dh, dy, dyLow, tdg, tdb, tdby, a.of(dout), h, mean, rstd, g, n,
          c, p, seed, offset);
      return bits(dh, dy, dyLow, tdg, tdb, tdby);
    });
  }

  /** Right padding: the last batch's last third of the keys. */
  private static int[] mask(int b, int t) {
    int[] m = new int[b * t];
    Arrays.fill(m, 1);
    Arrays.fill(m, (b - 1) * t + t - t / 3, b * t, 0);
    return m;
  }

  /**
   * attentionForward + attentionBackward (lowp: the bf16 tensor-core pair with its bf16 side
   * outputs), padding mask, p = 0.2; offset % 4 != 0 takes the kernels' per-element draws.
   */
  static void attention(Backend be, boolean lowp, int b, int t, int nh, int d, long offset) {
    Random r = new Random(b * 1000L + t);
    int c = nh * d, bt = b * t;
    float[] qkv = randn(r, bt * 3 * c), dout = randn(r, bt * c);
    int[] mask = mask(b, t);
    float p = 0.2f;
    String what = (lowp ? "attentionLowp" : "attention") + " b" + b + " t" + t + " nh" + nh
        + " d" + d + " offset " + offset;
    check(be, what, (a, seed, lr, step) -> {
      Tensor out = a.f32(bt * c), lse = a.f32(b * nh * t), dqkv = a.f32(bt * 3 * c);
      Tensor q = a.of(qkv), m = a.of(mask), g = a.of(dout);
      if (!lowp) {
        be.attentionForward(out, lse, q, m, b, t, nh, d, p, seed, offset);
        be.attentionBackward(dqkv, g, q, out, lse, m, b, t, nh, d, p, seed, offset);
        return bits(out, lse, dqkv);
      }
      Tensor outLow = a.bf16(bt * c), dqkvLow = a.bf16(bt * 3 * c);
      assertTrue(be.attentionForwardLowp(out, outLow, lse, q, m, b, t, nh, d, p, seed, offset));
      assertTrue(be.attentionBackwardLowp(dqkv, dqkvLow, g, q, out, lse, m, b, t, nh, d, p, seed,
          offset));
      return bits(out, outLow, lse, dqkv, dqkvLow);
    });
  }

  /** adamw (pLow and a gradScale too) over n elements: lr and step from the step scalars. */
  static void adamw(Backend be, int n) {
    Random r = new Random(n);
    float[] p0 = randn(r, n), g = randn(r, n, 0.1), m0 = randn(r, n, 0.01);
    float[] v0 = uniform(r, n, 0, 1e-3);
    check(be, "adamw n" + n, (a, seed, lr, step) -> {
      Tensor p = a.of(p0), low = a.bf16(n), m = a.of(m0), v = a.of(v0);
      be.adamw(p, low, a.of(g), m, v, n / 10, n - n / 10, lr, 0.9f, 0.999f, 1e-8f, 0.01f, step,
          a.of(new float[] {0.5f}));
      return bits(p, low, m, v);
    });
  }
}
