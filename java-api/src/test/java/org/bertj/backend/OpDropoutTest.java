package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
 * dropout_forward / dropout_backward / philox_uniform against a Java Philox-4x32-10 written from
 * bertj_philox.h (checked on Random123's known answers): bit-identical uniforms and masks.
 */
class OpDropoutTest extends OpTestBase {
  private static final long[] SEEDS = {0L, 42L, 0xDEADBEEFCAFEBABEL, -1L};

  @Test
  void javaPhiloxMatchesRandom123KnownAnswers() {
    // Random123 kat_vectors: philox4x32 10 <counter x4> <key x2> -> <output x4>
    assertArrayEquals(new int[] {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        OpRef.philox4x32x10(0, 0, 0, 0, 0, 0));
    assertArrayEquals(new int[] {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        OpRef.philox4x32x10(-1, -1, -1, -1, -1, -1));
    assertArrayEquals(new int[] {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
        OpRef.philox4x32x10(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822,
            0x299f31d0));
  }

  static Stream<Arguments> seedsAndOffsets() {
    return Arrays.stream(SEEDS).boxed().flatMap(s -> Stream.of(0L, 12_345L, (1L << 32) - 7,
        0x7FFF_FFFF_0000_0000L).map(o -> Arguments.of(s, o)));
  }

  @ParameterizedTest(name = "seed={0} offset={1}")
  @MethodSource("seedsAndOffsets")
  void philoxUniformIsBitIdenticalToJava(long seed, long offset) {
    int n = 2_000;
    try (Arena a = new Arena(be)) {
      Tensor u = a.f32(n);
      be.philoxUniform(u, seed, offset);
      float[] got = u.toFloatArray();
      for (int i = 0; i < n; i++) {
        float want = OpRef.philoxUniform(seed, offset + i);
        if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(got[i])) {
          throw new AssertionError("uniform " + i + " of seed " + seed + " offset " + offset
              + ": native " + got[i] + ", Java " + want);
        }
        assertTrue(got[i] >= 0f && got[i] < 1f);
      }
    }
  }

  static Stream<Arguments> forwardCases() {
    return Stream.of(Arguments.of(1, 0.1f), Arguments.of(17, 0.5f), Arguments.of(1000, 0.0f),
        Arguments.of(1000, 0.9f), Arguments.of(40_000, 0.1f)); // the last: OpenMP path
  }

  @ParameterizedTest(name = "n={0} p={1}")
  @MethodSource("forwardCases")
  void forwardAndBackwardApplyTheJavaMask(int n, float p) {
    Random r = new Random(n);
    long seed = 1234567L, offset = 99L;
    float[] x = randn(r, n), dout = randn(r, n);
    float scale = 1f / (1f - p);
    float[] want = new float[n], wantDx = new float[n];
    double[] ref = new double[n];
    for (int i = 0; i < n; i++) {
      boolean keep = OpRef.keep(p, seed, offset + i);
      want[i] = keep ? x[i] * scale : 0f;
      wantDx[i] = keep ? dout[i] * scale : 0f;
      ref[i] = keep ? x[i] / (1.0 - p) : 0;
    }
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), out = a.f32(n);
      be.dropoutForward(out, tx, p, seed, offset);
      assertArrayEquals(want, out.toFloatArray(), "forward vs the Java mask");
      if (p > 0 && n > 1) { // all-kept vectors are not a test of the double reference
        assertClose("dropout n" + n + " p" + p + " fwd", out.toFloatArray(), ref, FWD_TOL);
      }
      Tensor dx = a.f32(n), tdout = a.of(dout);
      be.dropoutBackward(dx, tdout, p, seed, offset);
      assertArrayEquals(wantDx, dx.toFloatArray(), "backward uses the same mask");
      // in place
      be.dropoutForward(tx, tx, p, seed, offset);
      assertArrayEquals(want, tx.toFloatArray(), "forward in place");
      be.dropoutBackward(tdout, tdout, p, seed, offset);
      assertArrayEquals(wantDx, tdout.toFloatArray(), "backward in place");
    }
  }

  @Test
  void sameSeedAndOffsetGiveTheSameMaskOthersDiffer() {
    int n = 10_000;
    float p = 0.5f;
    try (Arena a = new Arena(be)) {
      Tensor ones = a.f32(n), m1 = a.f32(n), m2 = a.f32(n), m3 = a.f32(n), m4 = a.f32(n);
      be.fill(ones, 1f);
      be.dropoutForward(m1, ones, p, 7L, 1000L);
      be.dropoutForward(m2, ones, p, 7L, 1000L);
      be.dropoutForward(m3, ones, p, 7L, 1001L);
      be.dropoutForward(m4, ones, p, 8L, 1000L);
      float[] a1 = m1.toFloatArray();
      assertArrayEquals(a1, m2.toFloatArray(), "same (seed, offset), same mask");
      // independent masks of p = 0.5 disagree on about half the elements
      for (float[] other : new float[][] {m3.toFloatArray(), m4.toFloatArray()}) {
        int diff = 0;
        for (int i = 0; i < n; i++) {
          diff += a1[i] != other[i] ? 1 : 0;
        }
        assertTrue(Math.abs(diff - n / 2.0) < 5 * Math.sqrt(n * 0.25), "disagreements " + diff);
      }
    }
  }

  @ParameterizedTest(name = "p={0}")
  @ValueSource(floats = {0.1f, 0.5f, 0.9f})
  void keptFractionIsOneMinusP(float p) {
    int n = 200_000;
    try (Arena a = new Arena(be)) {
      Tensor ones = a.f32(n), out = a.f32(n);
      be.fill(ones, 1f);
      be.dropoutForward(out, ones, p, 2024L, 0L);
      float scale = 1f / (1f - p);
      int kept = 0;
      for (float v : out.toFloatArray()) {
        assertTrue(v == 0f || v == scale, "dropout value " + v);
        kept += v != 0f ? 1 : 0;
      }
      double sigma = Math.sqrt(n * p * (1.0 - p));
      assertTrue(Math.abs(kept - n * (1.0 - p)) < 5 * sigma,
          "kept " + kept + " of " + n + " at p = " + p);
    }
  }

  @Test
  void uniformsAreUniform() {
    int n = 200_000, bins = 16;
    try (Arena a = new Arena(be)) {
      Tensor u = a.f32(n);
      be.philoxUniform(u, 3L, 0L);
      int[] count = new int[bins];
      double sum = 0;
      for (float v : u.toFloatArray()) {
        count[(int) (v * bins)]++;
        sum += v;
      }
      double chi2 = 0, e = (double) n / bins;
      for (int c : count) {
        chi2 += (c - e) * (c - e) / e;
      }
      assertTrue(chi2 < 45, "chi^2 with 15 degrees of freedom: " + chi2); // p ~ 1e-4
      assertEquals(0.5, sum / n, 5 * Math.sqrt(1.0 / 12 / n));
    }
  }

  @ParameterizedTest(name = "base offset={0}")
  @ValueSource(longs = {0L, (1L << 32) - 5}) // the second crosses into the counter's high word
  void offsetShiftsTheMask(long base) {
    int n = 1000, k = 37;
    float p = 0.3f;
    Random r = new Random(1);
    float[] x = randn(r, n + k);
    try (Arena a = new Arena(be)) {
      Tensor big = a.of(x), bigOut = a.f32(n + k);
      be.dropoutForward(bigOut, big, p, 5L, base);
      Tensor tail = big.view(k, n), out = a.f32(n);
      be.dropoutForward(out, tail, p, 5L, base + k);
      tail.close();
      assertArrayEquals(Arrays.copyOfRange(bigOut.toFloatArray(), k, n + k), out.toFloatArray(),
          "dropout(n, offset + k) = elements k.. of dropout(n + k, offset)");
    }
  }

  @Test
  void backwardMatchesFiniteDifferences() {
    int n = 40;
    float p = 0.25f;
    Random r = new Random(41);
    float[] x = randn(r, n), projF = randn(r, n);
    double[] proj = toDouble(projF);
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), out = a.f32(n), dx = a.f32(n);
      be.dropoutBackward(dx, a.of(projF), p, 9L, 3L);
      assertGradFd("dropout dx", dx.toFloatArray(), x.clone(), 1e-2f, n, r, v -> {
        tx.copyFrom(v);
        be.dropoutForward(out, tx, p, 9L, 3L);
        return dot(proj, out.toFloatArray());
      });
    }
  }
}
