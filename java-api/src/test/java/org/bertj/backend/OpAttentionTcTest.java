package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.stream.Stream;
import org.bertj.backend.OpAttentionTest.Mask;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * attention_tc (the bf16 tensor-core attention of the bf16 mode; here its CPU reference) against
 * the fp32 attention op: forward and backward within 1e-2 relative (bf16 rounding of q, k, v, P,
 * dout and dS: a few 2^-9 relative errors). Against the fp32 op fed the bf16-rounded q, k, v the
 * forward differs only by the rounding of P, hence the tighter 5e-3. Same mask rules (holes,
 * fully padded batches attending uniformly), the same Philox dropout mask, deterministic, and
 * false (no computation) for the shapes it does not support. The optional bf16 side outputs (out
 * and dqkv rounded in the same pass) hold exactly {@link Backend#toBf16} of the fp32 outputs and
 * change nothing else; wrong ones are rejected before native code runs. For inference out may be
 * null when outLow is not (the same outLow and lse).
 */
class OpAttentionTcTest extends OpTestBase {
  private static final long SEED = 0x7CL, OFFSET = 4_321L;
  private static final double VS_FP32_TOL = 1e-2;
  private static final double VS_ROUNDED_INPUT_TOL = 5e-3;

  /** b, t, nh, d, mask, p. */
  static Stream<Arguments> shapes() {
    return Stream.of(
        Arguments.of(1, 1, 1, 64, Mask.NONE, 0f),         // T = 1
        Arguments.of(2, 1, 2, 32, Mask.ALL_PADDED, 0.1f), // T = 1, its only key padded
        Arguments.of(3, 7, 2, 32, Mask.PAD, 0f),          // full, holes, fully padded
        Arguments.of(3, 7, 2, 64, Mask.PAD, 0.1f),
        Arguments.of(2, 64, 2, 64, Mask.NONE, 0.1f),
        Arguments.of(3, 100, 2, 64, Mask.PAD, 0.1f),
        Arguments.of(2, 128, 2, 32, Mask.PAD, 0f),
        Arguments.of(2, 128, 1, 64, Mask.NONE, 0f));
  }

  static float[] roundQkvToBf16(float[] x) {
    float[] y = new float[x.length];
    for (int i = 0; i < x.length; i++) {
      y[i] = OpBf16Test.bf16(x[i]);
    }
    return y;
  }

  @ParameterizedTest(name = "B={0} T={1} NH={2} D={3} mask={4} p={5}")
  @MethodSource("shapes")
  void agreesWithTheFp32Op(int b, int t, int nh, int d, Mask kind, float p) {
    Random r = new Random(31L * b + 17L * t + 7L * nh + d);
    int c = nh * d;
    float[] qkv = randn(r, b * t * 3 * c);
    int[] mask = OpAttentionTest.mask(kind, b, t, r);
    float[] dout = randn(r, b * t * c);
    String tag = "attn_tc B" + b + " T" + t + " NH" + nh + " D" + d + " " + kind + " p" + p;
    try (Arena a = new Arena(be)) {
      Tensor tq = a.of(qkv), tm = mask == null ? null : a.of(mask), tg = a.of(dout);
      Tensor out = a.f32(b, t, c), lse = a.f32(b, nh, t);
      be.fill(out, Float.NaN);
      be.fill(lse, Float.NaN);
      assertTrue(be.attentionForwardLowp(out, lse, tq, tm, b, t, nh, d, p, SEED, OFFSET));
      Tensor out32 = a.f32(b, t, c), lse32 = a.f32(b, nh, t);
      be.attentionForward(out32, lse32, tq, tm, b, t, nh, d, p, SEED, OFFSET);
      assertClose(tag + " out", out.toFloatArray(), out32.toFloatArray(), VS_FP32_TOL);
      // (lse is not compared with the fp32 op's: with few keys it is a single dot product, whose
      // relative error after rounding q and k can exceed 1e-2 by cancellation; it is checked
      // against the fp32 op on rounded inputs below.)
      // the fp32 op on the bf16-rounded q, k, v: only P's rounding remains
      Tensor out32r = a.f32(b, t, c), lse32r = a.f32(b, nh, t);
      be.attentionForward(out32r, lse32r, a.of(roundQkvToBf16(qkv)), tm, b, t, nh, d, p, SEED,
          OFFSET);
      assertClose(tag + " out vs rounded input", out.toFloatArray(), out32r.toFloatArray(),
          VS_ROUNDED_INPUT_TOL);
      assertClose(tag + " lse vs rounded input", lse.toFloatArray(), lse32r.toFloatArray(),
          1e-5);

      Tensor dqkv = a.f32(b, t, 3 * c), dqkv32 = a.f32(b, t, 3 * c);
      be.fill(dqkv, Float.NaN); // "=": every element must be written
      assertTrue(be.attentionBackwardLowp(dqkv, tg, tq, out, lse, tm, b, t, nh, d, p, SEED,
          OFFSET));
      be.attentionBackward(dqkv32, tg, tq, out32, lse32, tm, b, t, nh, d, p, SEED, OFFSET);
      assertClose(tag + " dqkv", dqkv.toFloatArray(), dqkv32.toFloatArray(), VS_FP32_TOL);

      float[] first = dqkv.toFloatArray();
      assertTrue(be.attentionBackwardLowp(dqkv, tg, tq, out, lse, tm, b, t, nh, d, p, SEED,
          OFFSET));
      assertArrayEquals(first, dqkv.toFloatArray(), "backward is deterministic");
    }
  }

  @ParameterizedTest(name = "B={0} T={1} NH={2} D={3} mask={4} p={5}")
  @MethodSource("shapes")
  void bf16SideOutputsAreToBf16OfTheOutputs(int b, int t, int nh, int d, Mask kind, float p) {
    Random r = new Random(13L * b + 5L * t + nh + d);
    int c = nh * d;
    float[] qkv = randn(r, b * t * 3 * c);
    int[] mask = OpAttentionTest.mask(kind, b, t, r);
    String tag = "B" + b + " T" + t + " NH" + nh + " D" + d + " " + kind + " p" + p;
    try (Arena a = new Arena(be)) {
      Tensor tq = a.of(qkv), tm = mask == null ? null : a.of(mask), tg = a.of(randn(r, b * t * c));
      Tensor out = a.f32(b, t, c), lse = a.f32(b, nh, t);
      assertTrue(be.attentionForwardLowp(out, lse, tq, tm, b, t, nh, d, p, SEED, OFFSET));
      Tensor out2 = a.f32(b, t, c), lse2 = a.f32(b, nh, t), outLow = a.bf16(b, t, c);
      be.fill(out2, Float.NaN);
      be.fill(lse2, Float.NaN);
      assertTrue(be.attentionForwardLowp(out2, outLow, lse2, tq, tm, b, t, nh, d, p, SEED,
          OFFSET));
      assertArrayEquals(rawBits(out.toFloatArray()), rawBits(out2.toFloatArray()),
          tag + ": out unchanged by outLow");
      assertArrayEquals(rawBits(lse.toFloatArray()), rawBits(lse2.toFloatArray()),
          tag + ": lse unchanged by outLow");
      assertArrayEquals(toBf16Bits(out), bf16Bits(outLow), tag + ": outLow = toBf16(out)");

      Tensor dqkv = a.f32(b, t, 3 * c), dqkv2 = a.f32(b, t, 3 * c);
      Tensor dqkvLow = a.bf16(b, t, 3 * c);
      assertTrue(be.attentionBackwardLowp(dqkv, tg, tq, out, lse, tm, b, t, nh, d, p, SEED,
          OFFSET));
      be.fill(dqkv2, Float.NaN);
      assertTrue(be.attentionBackwardLowp(dqkv2, dqkvLow, tg, tq, out, lse, tm, b, t, nh, d, p,
          SEED, OFFSET));
      assertArrayEquals(rawBits(dqkv.toFloatArray()), rawBits(dqkv2.toFloatArray()),
          tag + ": dqkv unchanged by dqkvLow");
      assertArrayEquals(toBf16Bits(dqkv), bf16Bits(dqkvLow), tag + ": dqkvLow = toBf16(dqkv)");
    }
  }

  /**
   * Inference: out may be null when outLow is not; outLow and lse then have the bits of the call
   * with out, and qkv is unchanged.
   */
  @ParameterizedTest(name = "B={0} T={1} NH={2} D={3} mask={4} p={5}")
  @MethodSource("shapes")
  void outMayBeNullWithOutLow(int b, int t, int nh, int d, Mask kind, float p) {
    Random r = new Random(11L * b + 3L * t + nh + d);
    int c = nh * d;
    float[] qkv = randn(r, b * t * 3 * c);
    int[] mask = OpAttentionTest.mask(kind, b, t, r);
    String tag = "B" + b + " T" + t + " NH" + nh + " D" + d + " " + kind + " p" + p;
    try (Arena a = new Arena(be)) {
      Tensor tq = a.of(qkv), tm = mask == null ? null : a.of(mask);
      Tensor out = a.f32(b, t, c), lse = a.f32(b, nh, t), outLow = a.bf16(b, t, c);
      assertTrue(be.attentionForwardLowp(out, outLow, lse, tq, tm, b, t, nh, d, p, SEED, OFFSET));
      Tensor lse2 = a.f32(b, nh, t), outLow2 = a.bf16(b, t, c);
      be.fill(lse2, Float.NaN);
      fillBf16(outLow2, Float.NaN);
      assertTrue(be.attentionForwardLowp(null, outLow2, lse2, tq, tm, b, t, nh, d, p, SEED,
          OFFSET));
      assertArrayEquals(bf16Bits(outLow), bf16Bits(outLow2), tag + ": outLow without out");
      assertArrayEquals(rawBits(lse.toFloatArray()), rawBits(lse2.toFloatArray()),
          tag + ": lse without out");
      assertArrayEquals(rawBits(qkv), rawBits(tq.toFloatArray()), tag + ": qkv unchanged");
    }
  }

  @Test
  void wrongSideOutputsAreRejected() {
    int b = 2, t = 8, nh = 2, d = 32, c = nh * d;
    try (Arena a = new Arena(be); CpuBackend other = new CpuBackend()) {
      Tensor qkv = a.f32(b, t, 3 * c), out = a.f32(b, t, c), lse = a.f32(b, nh, t);
      Tensor dout = a.f32(b, t, c), dqkv = a.f32(b, t, 3 * c);
      Tensor f32 = a.f32(b, t, c), small = a.bf16(b * t * c - 1), big = a.bf16(b, t, 3 * c + 1);
      try (Tensor foreign = other.alloc(DType.BF16, b, t, c);
          Tensor foreign3 = other.alloc(DType.BF16, b, t, 3 * c)) {
        for (Tensor bad : new Tensor[] {f32, small, big, foreign}) {
          assertThrows(IllegalArgumentException.class, () -> be.attentionForwardLowp(out, bad,
              lse, qkv, null, b, t, nh, d, 0f, SEED, OFFSET), "outLow " + bad);
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> be.attentionForwardLowp(null, null, lse, qkv, null, b, t, nh, d, 0f, SEED,
                OFFSET));
        assertTrue(e.getMessage().contains("out and outLow are both null"), e.getMessage());
        for (Tensor bad : new Tensor[] {a.f32(b, t, 3 * c), a.bf16(b, t, c), big, foreign3}) {
          assertThrows(IllegalArgumentException.class, () -> be.attentionBackwardLowp(dqkv, bad,
              dout, qkv, out, lse, null, b, t, nh, d, 0f, SEED, OFFSET), "dqkvLow " + bad);
        }
      }
    }
  }

  @Test
  void unsupportedShapesReturnFalse() {
    try (Arena a = new Arena(be)) {
      int[][] cases = {{129, 64}, {16, 16}, {16, 128}};
      for (int[] td : cases) {
        int t = td[0], d = td[1];
        Tensor qkv = a.f32(t, 3L * d), out = a.f32(t, d), lse = a.f32(t), dqkv = a.f32(t, 3L * d);
        assertFalse(be.attentionForwardLowp(out, lse, qkv, null, 1, t, 1, d, 0f, SEED, OFFSET),
            "T=" + t + " D=" + d);
        Tensor outLow = a.bf16(t, d);
        assertFalse(be.attentionForwardLowp(null, outLow, lse, qkv, null, 1, t, 1, d, 0f, SEED,
            OFFSET), "T=" + t + " D=" + d + " out=null");
        assertFalse(be.attentionBackwardLowp(dqkv, out, qkv, out, lse, null, 1, t, 1, d, 0f,
            SEED, OFFSET), "T=" + t + " D=" + d);
      }
    }
  }
}
