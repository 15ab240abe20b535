package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Mixed precision on the CPU: fp32 to bf16 rounding (nearest even, specials) against a Java
 * reference, the exact widening back, and {@link Backend#gemmBf16} against a double GEMM of the
 * bf16-rounded operands, for every transpose combination and padded leading dimensions.
 */
class OpBf16Test extends OpTestBase {
  /** Java reference: fp32 to the nearest bf16 (ties to even), returned widened to fp32. */
  static float bf16(float x) {
    if (Float.isNaN(x)) {
      return Float.NaN;
    }
    int u = Float.floatToRawIntBits(x);
    u += 0x7fff + ((u >>> 16) & 1);
    return Float.intBitsToFloat(u & 0xffff0000);
  }

  private float[] roundTrip(float[] x) {
    try (Arena a = new Arena(be); Tensor low = be.alloc(DType.BF16, x.length)) {
      Tensor out = a.f32(x.length);
      be.toBf16(low, a.of(x));
      be.fromBf16(out, low);
      return out.toFloatArray();
    }
  }

  @Test
  void roundsToNearestEvenWithSpecials() {
    float[] x = {0f, -0f, 1f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN,
        Float.MAX_VALUE, 1e-40f, Float.MIN_VALUE,
        1.00390625f, // 1 + 2^-8: halfway between 1 and 1 + 2^-7, ties to even: 1
        1.01171875f, // 1 + 3 * 2^-8: halfway, ties to even: 1 + 2^-6
        1.0039063f, // just above halfway: rounds up
        -2.5f, 3.14159265f, 65504f, 1e30f};
    float[] got = roundTrip(x);
    for (int i = 0; i < x.length; i++) {
      float want = bf16(x[i]);
      if (Float.isNaN(want)) {
        assertTrue(Float.isNaN(got[i]), "NaN must stay NaN");
      } else {
        assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(got[i]),
            "bf16(" + x[i] + ") = " + want + ", got " + got[i]);
      }
    }
    assertEquals(1f, got[9], 0f);
    assertEquals(1.015625f, got[10], 0f);
    assertEquals(Float.POSITIVE_INFINITY, got[6], 0f); // MAX_VALUE rounds up to infinity
  }

  @Test
  void matchesTheReferenceOnRandomData() {
    Random r = new Random(7);
    float[] x = randn(r, 100_003, 3.0);
    float[] got = roundTrip(x);
    for (int i = 0; i < x.length; i++) {
      assertEquals(Float.floatToIntBits(bf16(x[i])), Float.floatToIntBits(got[i]), "element " + i);
      // relative rounding error at most half an ulp: 2^-8
      assertTrue(Math.abs(got[i] - x[i]) <= Math.abs(x[i]) * 0x1p-8f, "element " + i);
    }
  }

  @Test
  void gemmBf16MatchesDoubleGemmOfRoundedOperands() {
    Random r = new Random(11);
    int m = 37;
    int n = 29;
    int k = 53;
    for (boolean ta : new boolean[] {false, true}) {
      for (boolean tb : new boolean[] {false, true}) {
        int lda = (ta ? m : k) + 3;
        int ldb = (tb ? k : n) + 1;
        int ldc = n + 2;
        float[] av = randn(r, (ta ? k : m) * lda);
        float[] bv = randn(r, (tb ? n : k) * ldb);
        float[] cv = randn(r, m * ldc);
        double[] ref = new double[m * ldc];
        for (int i = 0; i < m; i++) {
          for (int j = 0; j < ldc; j++) {
            ref[i * ldc + j] = cv[i * ldc + j];
            if (j >= n) {
              continue;
            }
            double s = 0;
            for (int p = 0; p < k; p++) {
              float aip = ta ? av[p * lda + i] : av[i * lda + p];
              float bpj = tb ? bv[j * ldb + p] : bv[p * ldb + j];
              s += (double) bf16(aip) * bf16(bpj);
            }
            ref[i * ldc + j] = 0.5 * s + 0.25 * cv[i * ldc + j];
          }
        }
        try (Arena ar = new Arena(be); Tensor al = be.alloc(DType.BF16, av.length);
            Tensor bl = be.alloc(DType.BF16, bv.length)) {
          be.toBf16(al, ar.of(av));
          be.toBf16(bl, ar.of(bv));
          Tensor c = ar.of(cv);
          be.gemmBf16(ta, tb, m, n, k, 0.5f, al, lda, bl, ldb, 0.25f, c, ldc);
          assertClose("gemmBf16 ta=" + ta + " tb=" + tb, c.toFloatArray(), ref, FWD_TOL);
        }
      }
    }
  }

  @Test
  void badArgumentsAreClearErrors() {
    try (Arena a = new Arena(be); Tensor low = be.alloc(DType.BF16, 4)) {
      Tensor x = a.f32(5);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> be.toBf16(low, x));
      assertTrue(e.getMessage().contains("4") && e.getMessage().contains("5"), e.getMessage());
      Tensor c = a.f32(4);
      e = assertThrows(IllegalArgumentException.class,
          () -> be.gemmBf16(false, false, 2, 2, 2, 1f, x, 2, low, 2, 0f, c, 2));
      assertTrue(e.getMessage().contains("A must be BF16"), e.getMessage());
    }
  }
}
