package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * attention_forward / attention_backward vs a double softmax-attention reference (mask, no-real-key
 * rows attending uniformly with lse = log T, Philox dropout on P) and vs central differences.
 */
class OpAttentionTest extends OpTestBase {
  private static final long SEED = 0x5EEDL, OFFSET = 1_000L;

  /** Mask kinds: NONE = null (all real); PAD = batch b%3: 0 full, 1 random holes, 2 all padded. */
  enum Mask { NONE, PAD, ALL_PADDED }

  static int[] mask(Mask kind, int b, int t, Random r) {
    if (kind == Mask.NONE) {
      return null;
    }
    int[] m = new int[b * t];
    for (int bb = 0; bb < b; bb++) {
      int k = kind == Mask.ALL_PADDED ? 2 : bb % 3;
      int real = 0;
      for (int j = 0; j < t; j++) {
        m[bb * t + j] = k == 0 ? 1 : k == 1 ? (r.nextDouble() < 0.6 ? 1 : 0) : 0;
        real += m[bb * t + j];
      }
      if (k == 1 && real == 0) {
        m[bb * t] = 1;
      }
    }
    return m;
  }

  /** b, t, nh, d, mask, p. */
  static Stream<Arguments> shapes() {
    return Stream.of(
        Arguments.of(1, 1, 1, 8, Mask.NONE, 0f),        // T = 1, B = 1
        Arguments.of(1, 1, 2, 8, Mask.ALL_PADDED, 0f),  // T = 1, its only key padded
        Arguments.of(3, 5, 2, 8, Mask.PAD, 0f),         // full, holes, fully padded
        Arguments.of(3, 7, 3, 32, Mask.PAD, 0f),
        Arguments.of(1, 9, 2, 64, Mask.NONE, 0f),
        Arguments.of(2, 6, 3, 5, Mask.PAD, 0f),         // NH * D = 15, odd
        Arguments.of(1, 4, 1, 7, Mask.NONE, 0f),        // NH * D = 7
        Arguments.of(2, 4, 2, 8, Mask.ALL_PADDED, 0.2f),
        Arguments.of(3, 5, 2, 8, Mask.PAD, 0.2f),       // dropout on P
        Arguments.of(3, 33, 4, 64, Mask.PAD, 0.1f));    // over the OpenMP threshold
  }

  @ParameterizedTest(name = "B={0} T={1} NH={2} D={3} mask={4} p={5}")
  @MethodSource("shapes")
  void forwardAndBackwardMatchReference(int b, int t, int nh, int d, Mask kind, float p) {
    Random r = new Random(1_000L * b + 100L * t + 10L * nh + d);
    int c = nh * d;
    float[] qkv = randn(r, b * t * 3 * c);
    int[] mask = mask(kind, b, t, r);
    float[] dout = randn(r, b * t * c);
    String tag = "attn B" + b + " T" + t + " NH" + nh + " D" + d + " " + kind + " p" + p;
    try (Arena a = new Arena(be)) {
      Tensor tq = a.of(qkv), tm = mask == null ? null : a.of(mask);
      Tensor out = a.f32(b, t, c), lse = a.f32(b, nh, t);
      be.attentionForward(out, lse, tq, tm, b, t, nh, d, p, SEED, OFFSET);
      OpRef.Attention ref = OpRef.attention(qkv, mask, b, t, nh, d, p, SEED, OFFSET);
      assertClose(tag + " out", out.toFloatArray(), ref.out(), FWD_TOL);
      assertClose(tag + " lse", lse.toFloatArray(), ref.lse(), FWD_TOL);

      Tensor dqkv = a.f32(b, t, 3 * c);
      be.fill(dqkv, Float.NaN); // "=": every element must be written
      be.attentionBackward(dqkv, a.of(dout), tq, out, lse, tm, b, t, nh, d, p, SEED, OFFSET);
      double[] refD = OpRef.attentionBackward(dout, qkv, mask, b, t, nh, d, p, SEED, OFFSET);
      assertClose(tag + " dqkv", dqkv.toFloatArray(), refD, BWD_TOL);

      // The same call again gives the same bits (fixed order, same mask).
      float[] first = dqkv.toFloatArray();
      be.attentionBackward(dqkv, a.of(dout), tq, out, lse, tm, b, t, nh, d, p, SEED, OFFSET);
      assertArrayEquals(first, dqkv.toFloatArray(), "backward is deterministic");
    }
  }

  static Stream<Arguments> fdShapes() {
    return Stream.of(
        Arguments.of(1, 1, 1, 8, Mask.NONE, 0f),
        Arguments.of(1, 3, 1, 8, Mask.ALL_PADDED, 0f),
        Arguments.of(3, 4, 2, 8, Mask.PAD, 0f),
        Arguments.of(1, 5, 3, 5, Mask.NONE, 0f),
        Arguments.of(3, 4, 2, 8, Mask.PAD, 0.3f),   // dropout, fixed seed: a smooth function
        Arguments.of(1, 6, 1, 8, Mask.NONE, 0.5f));
  }

  /** Central differences in double of L = sum r . out, the fp32 op evaluated at qkv +- eps. */
  @ParameterizedTest(name = "B={0} T={1} NH={2} D={3} mask={4} p={5}")
  @MethodSource("fdShapes")
  void backwardMatchesFiniteDifferences(int b, int t, int nh, int d, Mask kind, float p) {
    Random r = new Random(7L * b + 5L * t + 3L * nh + d);
    int c = nh * d;
    float[] qkv = randn(r, b * t * 3 * c);
    int[] mask = mask(kind, b, t, r);
    float[] projF = randn(r, b * t * c);
    double[] proj = toDouble(projF);
    String tag = "attn B" + b + " T" + t + " NH" + nh + " D" + d + " " + kind + " p" + p;
    try (Arena a = new Arena(be)) {
      Tensor tq = a.of(qkv), tm = mask == null ? null : a.of(mask);
      Tensor out = a.f32(b, t, c), lse = a.f32(b, nh, t), dqkv = a.f32(b, t, 3 * c);
      be.attentionForward(out, lse, tq, tm, b, t, nh, d, p, SEED, OFFSET);
      be.attentionBackward(dqkv, a.of(projF), tq, out, lse, tm, b, t, nh, d, p, SEED, OFFSET);
      Tensor out2 = a.f32(b, t, c), lse2 = a.f32(b, nh, t);
      assertGradFd(tag + " dqkv", dqkv.toFloatArray(), qkv.clone(), 1e-2f, 160, r, v -> {
        tq.copyFrom(v);
        be.attentionForward(out2, lse2, tq, tm, b, t, nh, d, p, SEED, OFFSET);
        return dot(proj, out2.toFloatArray());
      });
    }
  }
}
