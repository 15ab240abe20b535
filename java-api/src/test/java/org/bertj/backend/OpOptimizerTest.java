package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * sum_squares, clip_scale and adamw vs a double torch.optim.AdamW over several steps; adamw's
 * bf16 side output (the updated p rounded in the same pass) is exactly {@link Backend#toBf16} of
 * p and changes nothing else.
 */
class OpOptimizerTest extends OpTestBase {

  @ParameterizedTest(name = "n={0}")
  @ValueSource(ints = {1, 7, 255, 256, 257, 100_003, (1 << 20) + 3})
  void sumSquaresMatchesReference(int n) {
    Random r = new Random(n);
    float[] x = randn(r, n, 0.1);
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), out = a.f32(1);
      be.sumSquares(out, tx);
      float got = out.toFloatArray()[0];
      assertClose("sumsq n" + n, new float[] {got}, new double[] {OpRef.sumSquares(x)}, 1e-6);
      be.sumSquares(out, tx);
      assertEquals(Float.floatToRawIntBits(got), Float.floatToRawIntBits(out.toFloatArray()[0]),
          "same bits twice");
    }
  }

  @Test
  void clipScaleIsTorchClipGradNorm() {
    // normSq, maxNorm
    float[][] cases = {{0f, 1f}, {0.25f, 1f}, {100f, 1f}, {4f, 2f}, {1e10f, 0.5f}, {1f, 1f}};
    try (Arena a = new Arena(be)) {
      Tensor scale = a.f32(1), ns = a.f32(1);
      for (float[] c : cases) {
        ns.copyFrom(new float[] {c[0]});
        be.clipScale(scale, ns, c[1]);
        double want = Math.min(1.0, c[1] / (Math.sqrt(c[0]) + 1e-6));
        assertClose("clip normSq " + c[0] + " max " + c[1], scale.toFloatArray(),
            new double[] {want}, 1e-6);
        assertTrue(scale.toFloatArray()[0] <= 1f);
      }
      ns.copyFrom(new float[] {Float.NaN});
      be.clipScale(scale, ns, 1f);
      assertTrue(Float.isNaN(scale.toFloatArray()[0]), "a NaN norm gives a NaN scale");
    }
  }

  /** n, decay range, lr, wd, eps, steps, gradient scale on odd steps (0 = null). */
  static Stream<Arguments> adamwCases() {
    return Stream.of(
        Arguments.of(1, 0, 1, 1e-3f, 0.01f, 1e-8f, 3, 0f),
        Arguments.of(1003, 100, 900, 1e-3f, 0.01f, 1e-8f, 10, 0.5f),
        Arguments.of(1003, 0, 0, 2e-5f, 0.0f, 1e-6f, 10, 0f),       // no decay anywhere
        Arguments.of(777, 0, 777, 5e-2f, 0.1f, 1e-8f, 12, 0.25f),  // large lr and decay
        Arguments.of(40_009, 5, 40_000, 1e-3f, 0.01f, 1e-8f, 5, 2f)); // OpenMP path
  }

  @ParameterizedTest(name = "n={0} decay=[{1},{2}) lr={3} wd={4} eps={5} steps={6} gs={7}")
  @MethodSource("adamwCases")
  void adamwMatchesTorchReference(int n, int decayBegin, int decayEnd, float lr, float wd,
      float eps, int steps, float gs) {
    float beta1 = 0.9f, beta2 = 0.999f;
    Random r = new Random(n + steps);
    float[] p0 = randn(r, n);
    double[] rp = toDouble(p0), rm = new double[n], rv = new double[n];
    String tag = "adamw n" + n + " lr" + lr + " wd" + wd;
    try (Arena a = new Arena(be)) {
      Tensor p = a.of(p0), m = a.f32(n), v = a.f32(n), g = a.f32(n), scale = a.f32(1);
      for (int step = 1; step <= steps; step++) {
        float[] grad = randn(r, n, step % 3 == 0 ? 1e-3 : 1.0); // some steps with small grads
        g.copyFrom(grad);
        boolean scaled = gs != 0f && step % 2 == 1;
        if (scaled) {
          scale.copyFrom(new float[] {gs});
        }
        be.adamw(p, g, m, v, decayBegin, decayEnd, lr, beta1, beta2, eps, wd, step,
            scaled ? scale : null);
        OpRef.adamwStep(rp, grad, rm, rv, decayBegin, decayEnd, lr, beta1, beta2, eps, wd, step,
            scaled ? gs : 1.0);
        assertArrayEquals(grad, g.toFloatArray(), "g is not modified");
      }
      assertClose(tag + " p", p.toFloatArray(), rp, FWD_TOL);
      assertClose(tag + " m", m.toFloatArray(), rm, FWD_TOL);
      assertClose(tag + " v", v.toFloatArray(), rv, FWD_TOL);
      // The update itself (p - p0) is accurate, up to the rounding of p to fp32 in each step
      // (half an ulp of |p| per step), which dominates when lr is small.
      float[] dp = p.toFloatArray();
      double[] rdp = new double[n];
      for (int i = 0; i < n; i++) {
        dp[i] -= p0[i];
        rdp[i] = rp[i] - p0[i];
      }
      double rounding = steps * Math.ulp(1f) / 2 * norm(toDouble(p0)) / norm(rdp);
      assertClose(tag + " p - p0", dp, rdp, 1e-4 + rounding);
    }
  }

  @ParameterizedTest(name = "n={0} decay=[{1},{2}) lr={3} wd={4} eps={5} steps={6} gs={7}")
  @MethodSource("adamwCases")
  void adamwBf16SideOutputIsToBf16OfTheUpdatedP(int n, int decayBegin, int decayEnd, float lr,
      float wd, float eps, int steps, float gs) {
    Random r = new Random(3L * n + steps);
    float[] p0 = randn(r, n);
    try (Arena a = new Arena(be)) {
      Tensor p = a.of(p0), m = a.f32(n), v = a.f32(n);
      Tensor p2 = a.of(p0), m2 = a.f32(n), v2 = a.f32(n);
      // a view one element in: an address that is not 8-byte aligned
      Tensor pLow = a.bf16(n + 1).view(1, n);
      Tensor g = a.f32(n), scale = a.f32(1);
      for (int step = 1; step <= steps; step++) {
        g.copyFrom(randn(r, n));
        boolean scaled = gs != 0f && step % 2 == 1;
        if (scaled) {
          scale.copyFrom(new float[] {gs});
        }
        Tensor sc = scaled ? scale : null;
        be.adamw(p, g, m, v, decayBegin, decayEnd, lr, 0.9f, 0.999f, eps, wd, step, sc);
        be.adamw(p2, pLow, g, m2, v2, decayBegin, decayEnd, lr, 0.9f, 0.999f, eps, wd, step, sc);
        String tag = "n" + n + " step " + step;
        assertArrayEquals(rawBits(p.toFloatArray()), rawBits(p2.toFloatArray()), tag + " p");
        assertArrayEquals(rawBits(m.toFloatArray()), rawBits(m2.toFloatArray()), tag + " m");
        assertArrayEquals(rawBits(v.toFloatArray()), rawBits(v2.toFloatArray()), tag + " v");
        assertArrayEquals(toBf16Bits(p), bf16Bits(pLow), tag + " pLow = toBf16(p)");
      }
    }
  }

  @Test
  void wrongAdamwSideOutputIsRejected() {
    int n = 100;
    try (Arena a = new Arena(be); CpuBackend other = new CpuBackend()) {
      Tensor p = a.f32(n), g = a.f32(n), m = a.f32(n), v = a.f32(n);
      be.fill(g, 1f); // a step would move p
      try (Tensor foreign = other.alloc(DType.BF16, n)) {
        for (Tensor bad : new Tensor[] {a.f32(n), a.bf16(n - 1), a.bf16(n + 1), foreign}) {
          assertThrows(IllegalArgumentException.class, () -> be.adamw(p, bad, g, m, v, 0, n,
              1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, null), "pLow " + bad);
        }
      }
      assertArrayEquals(new float[n], p.toFloatArray(), "nothing ran");
    }
  }

  @Test
  void weightDecayOnlyInsideTheDecayRange() {
    int n = 100, lo = 20, hi = 70;
    float lr = 0.1f, wd = 0.5f;
    Random r = new Random(53);
    float[] p0 = randn(r, n);
    try (Arena a = new Arena(be)) {
      Tensor p = a.of(p0), g = a.f32(n), m = a.f32(n), v = a.f32(n);
      // zero gradient and state: the Adam part is 0 / (0 + eps) = 0, only the decay moves p
      be.adamw(p, g, m, v, lo, hi, lr, 0.9f, 0.999f, 1e-8f, wd, 1, null);
      float[] got = p.toFloatArray();
      double[] want = new double[hi - lo];
      for (int i = lo; i < hi; i++) {
        want[i - lo] = p0[i] * (1 - (double) lr * wd);
      }
      assertClose("adamw decay range", Arrays.copyOfRange(got, lo, hi), want, 1e-6);
      assertArrayEquals(Arrays.copyOfRange(p0, 0, lo), Arrays.copyOfRange(got, 0, lo));
      assertArrayEquals(Arrays.copyOfRange(p0, hi, n), Arrays.copyOfRange(got, hi, n));
    }
  }

  @Test
  void clippedStepMatchesReference() {
    // sum_squares -> clip_scale -> adamw(gradScale): the global-norm clipping of a train step
    int n = 5000;
    float maxNorm = 1f, lr = 1e-3f, wd = 0.01f;
    Random r = new Random(59);
    float[] p0 = randn(r, n), grad = randn(r, n);
    try (Arena a = new Arena(be)) {
      Tensor p = a.of(p0), g = a.of(grad), m = a.f32(n), v = a.f32(n);
      Tensor normSq = a.f32(1), scale = a.f32(1);
      be.sumSquares(normSq, g);
      be.clipScale(scale, normSq, maxNorm);
      be.adamw(p, g, m, v, 0, n, lr, 0.9f, 0.999f, 1e-8f, wd, 1, scale);
      double clip = Math.min(1, maxNorm / (Math.sqrt(OpRef.sumSquares(grad)) + 1e-6));
      assertTrue(clip < 0.1, "the test gradient is clipped");
      double[] rp = toDouble(p0), rm = new double[n], rv = new double[n];
      OpRef.adamwStep(rp, grad, rm, rv, 0, n, lr, 0.9, 0.999, 1e-8, wd, 1, clip);
      assertClose("adamw clipped p", p.toFloatArray(), rp, FWD_TOL);
      assertClose("adamw clipped m", m.toFloatArray(), rm, FWD_TOL);
    }
  }

  private static double norm(double[] v) {
    double s = 0;
    for (double x : v) {
      s += x * x;
    }
    return Math.sqrt(s);
  }
}
