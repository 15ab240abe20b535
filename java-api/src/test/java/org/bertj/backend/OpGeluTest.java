package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * bias_add, bias_backward, bias_gelu_forward / bias_gelu_backward (exact erf GELU), the bf16
 * side outputs of the GELU ops, and the forward's optional outputs (out with outLow, pre).
 */
class OpGeluTest extends OpTestBase {

  /** n, c. */
  static Stream<Arguments> shapes() {
    return Stream.of(Arguments.of(1, 1), Arguments.of(1, 7), Arguments.of(3, 13),
        Arguments.of(8, 64), Arguments.of(6, 3072), Arguments.of(37, 515));
  }

  @Test
  void erfReferenceIsAccurate() {
    // Values from the DLMF / Abramowitz & Stegun tables.
    assertEquals(0.0, OpRef.erf(0), 0);
    assertEquals(0.5204998778130465, OpRef.erf(0.5), 1e-15);
    assertEquals(0.8427007929497149, OpRef.erf(1), 1e-15);
    assertEquals(-0.9953222650189527, OpRef.erf(-2), 1e-15);
    assertEquals(1 - 2.209049699858544e-5, OpRef.erf(3), 1e-15);
    assertEquals(1 - 1.5374597944280349e-12, OpRef.erf(5), 1e-15);
    // both branches agree at the switch
    assertEquals(OpRef.erf(2.4999999999), OpRef.erf(2.5), 1e-12);
  }

  @ParameterizedTest(name = "N={0} C={1}")
  @MethodSource("shapes")
  void biasAddAndBiasBackwardMatchReference(int n, int c) {
    Random r = new Random(17L * n + c);
    float[] x = randn(r, n * c), bias = randn(r, c), dout = randn(r, n * c), db0 = randn(r, c);
    String tag = "bias N" + n + " C" + c;
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x);
      be.biasAdd(tx, a.of(bias), n, c);
      assertClose(tag + " add", tx.toFloatArray(), OpRef.biasAdd(x, bias, n, c), FWD_TOL);
      Tensor db = a.of(db0);
      be.biasBackward(db, a.of(dout), n, c);
      double[] ref = toDouble(db0);
      OpRef.columnSums(ref, toDouble(dout), n, c);
      assertClose(tag + " dbias", db.toFloatArray(), ref, BWD_TOL);
    }
  }

  @ParameterizedTest(name = "N={0} C={1}")
  @MethodSource("shapes")
  void biasGeluMatchesReference(int n, int c) {
    Random r = new Random(19L * n + c);
    float[] x = randn(r, n * c, 2.0), bias = randn(r, c), dout = randn(r, n * c);
    float[] db0 = randn(r, c);
    String tag = "gelu N" + n + " C" + c;
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), tb = a.of(bias), out = a.f32(n * c), pre = a.f32(n * c);
      be.biasGeluForward(out, pre, tx, tb, n, c);
      double[] refPre = OpRef.biasAdd(x, bias, n, c);
      double[] refOut = new double[n * c];
      for (int i = 0; i < refOut.length; i++) {
        refOut[i] = OpRef.gelu(refPre[i]);
      }
      assertClose(tag + " pre", pre.toFloatArray(), refPre, FWD_TOL);
      assertClose(tag + " out", out.toFloatArray(), refOut, FWD_TOL);

      // bias may be null; pre may alias x
      Tensor inplace = a.of(x), out2 = a.f32(n * c);
      be.biasGeluForward(out2, inplace, inplace, null, n, c);
      double[] refOut2 = new double[n * c];
      for (int i = 0; i < refOut2.length; i++) {
        refOut2[i] = OpRef.gelu(x[i]);
      }
      assertArrayEquals(x, inplace.toFloatArray(), "pre = x when bias is null");
      assertClose(tag + " out (no bias)", out2.toFloatArray(), refOut2, FWD_TOL);

      // backward: dpre "=", dbias "+="
      float[] preF = pre.toFloatArray();
      Tensor dpre = a.f32(n * c), db = a.of(db0), tdout = a.of(dout);
      be.biasGeluBackward(dpre, db, tdout, pre, n, c);
      double[] refDpre = new double[n * c];
      for (int i = 0; i < refDpre.length; i++) {
        refDpre[i] = dout[i] * OpRef.geluGrad(preF[i]);
      }
      double[] refDb = toDouble(db0);
      OpRef.columnSums(refDb, refDpre, n, c);
      assertClose(tag + " dpre", dpre.toFloatArray(), refDpre, BWD_TOL);
      assertClose(tag + " dbias", db.toFloatArray(), refDb, BWD_TOL);

      // dbias null, dpre aliasing dout: same dpre
      float[] dpreBits = dpre.toFloatArray();
      be.biasGeluBackward(tdout, null, tdout, pre, n, c);
      assertArrayEquals(dpreBits, tdout.toFloatArray(), "dpre aliasing dout");
    }
  }

  /**
   * The bf16 side outputs (outLow, dpreLow): bit for bit toBf16 of the fp32 output, which is the
   * same as without them (also with pre aliasing x, dpre aliasing dout, dbias null).
   */
  @ParameterizedTest(name = "N={0} C={1}")
  @MethodSource("shapes")
  void bf16SideOutputsAreToBf16OfTheOutputs(int n, int c) {
    Random r = new Random(29L * n + c);
    float[] x = randn(r, n * c, 2.0), bias = randn(r, c), dout = randn(r, n * c);
    float[] db0 = randn(r, c);
    String tag = "gelu bf16 N" + n + " C" + c;
    try (Arena a = new Arena(be)) {
      Tensor tb = a.of(bias);
      Tensor out = a.f32(n * c), pre = a.f32(n * c);
      be.biasGeluForward(out, pre, a.of(x), tb, n, c);
      Tensor out2 = a.f32(n * c), pre2 = a.f32(n * c), low = a.bf16((long) n * c);
      be.biasGeluForward(out2, low, pre2, a.of(x), tb, n, c);
      assertArrayEquals(out.toFloatArray(), out2.toFloatArray(), tag + " out");
      assertArrayEquals(pre.toFloatArray(), pre2.toFloatArray(), tag + " pre");
      assertIsToBf16Of(tag + " outLow", low, out);
      // pre aliasing x, no bias
      Tensor inplace = a.of(x), out3 = a.f32(n * c), low3 = a.bf16((long) n * c);
      be.biasGeluForward(out3, low3, inplace, inplace, null, n, c);
      assertArrayEquals(x, inplace.toFloatArray(), tag + " pre = x");
      assertIsToBf16Of(tag + " outLow (no bias)", low3, out3);

      // backward, with and without dbias, and dpre aliasing dout
      Tensor dpre = a.f32(n * c), db = a.of(db0);
      be.biasGeluBackward(dpre, db, a.of(dout), pre, n, c);
      Tensor dpre2 = a.f32(n * c), db2 = a.of(db0), dlow = a.bf16((long) n * c);
      be.biasGeluBackward(dpre2, dlow, db2, a.of(dout), pre, n, c);
      assertArrayEquals(dpre.toFloatArray(), dpre2.toFloatArray(), tag + " dpre");
      assertArrayEquals(db.toFloatArray(), db2.toFloatArray(), tag + " dbias");
      assertIsToBf16Of(tag + " dpreLow", dlow, dpre);
      Tensor tdout = a.of(dout), dlow2 = a.bf16((long) n * c);
      be.biasGeluBackward(tdout, dlow2, null, tdout, pre, n, c);
      assertArrayEquals(dpre.toFloatArray(), tdout.toFloatArray(), tag + " dpre aliasing dout");
      assertArrayEquals(bf16Bits(dlow), bf16Bits(dlow2), tag + " dpreLow (dbias null, aliasing)");
    }
  }

  /**
   * Inference: pre may be null, and out when outLow is not. outLow then has the bits of the call
   * with every output, the outputs still given have theirs, and nothing else is written: x stays
   * as it was (also where pre would have been x), and out = x without pre gives x the same out.
   */
  @ParameterizedTest(name = "N={0} C={1}")
  @MethodSource("shapes")
  void optionalOutputsLeaveOutLowTheSame(int n, int c) {
    Random r = new Random(37L * n + c);
    float[] x = randn(r, n * c, 2.0), bias = randn(r, c);
    int[] xBits = rawBits(x);
    try (Arena a = new Arena(be)) {
      for (Tensor tb : new Tensor[] {a.of(bias), null}) {
        String tag = "gelu N" + n + " C" + c + (tb == null ? " no bias" : "");
        Tensor out = a.f32(n * c), pre = a.f32(n * c), low = a.bf16((long) n * c);
        be.biasGeluForward(out, low, pre, a.of(x), tb, n, c);
        int[] outBits = rawBits(out.toFloatArray()), preBits = rawBits(pre.toFloatArray());
        int[] lowBits = bf16Bits(low);
        for (boolean withOut : new boolean[] {true, false}) {
          for (boolean withPre : new boolean[] {true, false}) {
            if (withOut && withPre) {
              continue;
            }
            String what = tag + (withOut ? " out" : " out=null") + (withPre ? " pre" : " pre=null");
            Tensor tx = a.of(x), low2 = a.bf16((long) n * c);
            Tensor out2 = withOut ? a.f32(n * c) : null, pre2 = withPre ? a.f32(n * c) : null;
            fillBf16(low2, Float.NaN);
            be.biasGeluForward(out2, low2, pre2, tx, tb, n, c);
            assertArrayEquals(lowBits, bf16Bits(low2), what + ": outLow");
            assertArrayEquals(xBits, rawBits(tx.toFloatArray()), what + ": x unchanged");
            if (withOut) {
              assertArrayEquals(outBits, rawBits(out2.toFloatArray()), what + ": out");
            }
            if (withPre) {
              assertArrayEquals(preBits, rawBits(pre2.toFloatArray()), what + ": pre");
            }
          }
        }
        // in place: out = x without pre; pre = x without out
        Tensor tx = a.of(x), low3 = a.bf16((long) n * c);
        fillBf16(low3, Float.NaN);
        be.biasGeluForward(tx, low3, null, tx, tb, n, c);
        assertArrayEquals(outBits, rawBits(tx.toFloatArray()), tag + " out = x, pre=null: out");
        assertArrayEquals(lowBits, bf16Bits(low3), tag + " out = x, pre=null: outLow");
        Tensor tx4 = a.of(x), low4 = a.bf16((long) n * c);
        fillBf16(low4, Float.NaN);
        be.biasGeluForward(null, low4, tx4, tx4, tb, n, c);
        assertArrayEquals(preBits, rawBits(tx4.toFloatArray()), tag + " pre = x, out=null: pre");
        assertArrayEquals(lowBits, bf16Bits(low4), tag + " pre = x, out=null: outLow");
      }
    }
  }

  @Test
  void badSideOutputsAreRejectedInJava() {
    int n = 2, c = 4;
    try (Arena a = new Arena(be)) {
      Tensor x = a.f32(n, c), b = a.f32(c), wrongType = a.f32(n * c), small = a.bf16(n * c - 1);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> be.biasGeluForward(x, wrongType, x, x, b, n, c));
      assertTrue(e.getMessage().contains("outLow must be BF16"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.biasGeluForward(x, small, x, x, b, n, c));
      assertTrue(e.getMessage().startsWith("outLow must have 8 elements"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.biasGeluForward(null, null, x, x, b, n, c));
      assertTrue(e.getMessage().contains("out and outLow are both null"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.biasGeluForward(null, null, null, x, b, n, c));
      assertTrue(e.getMessage().contains("out and outLow are both null"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.biasGeluBackward(x, wrongType, b, x, x, n, c));
      assertTrue(e.getMessage().contains("dpreLow must be BF16"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.biasGeluBackward(x, small, null, x, x, n, c));
      assertTrue(e.getMessage().startsWith("dpreLow must have 8 elements"), e.getMessage());
    }
  }

  @Test
  void backwardMatchesFiniteDifferences() {
    int n = 4, c = 11;
    Random r = new Random(23);
    float[] x = randn(r, n * c, 2.0), bias = randn(r, c);
    float[] projF = randn(r, n * c);
    double[] proj = toDouble(projF);
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), tb = a.of(bias), out = a.f32(n * c), pre = a.f32(n * c);
      be.biasGeluForward(out, pre, tx, tb, n, c);
      Tensor dpre = a.f32(n * c), db = a.f32(c);
      be.biasGeluBackward(dpre, db, a.of(projF), pre, n, c);
      assertGradFd("gelu dx", dpre.toFloatArray(), x.clone(), 1e-2f, 44, r, v -> {
        tx.copyFrom(v);
        be.biasGeluForward(out, pre, tx, tb, n, c);
        return dot(proj, out.toFloatArray());
      });
      tx.copyFrom(x);
      assertGradFd("gelu dbias", db.toFloatArray(), bias.clone(), 1e-2f, 11, r, v -> {
        tb.copyFrom(v);
        be.biasGeluForward(out, pre, tx, tb, n, c);
        return dot(proj, out.toFloatArray());
      });
      // bias_add / bias_backward: L = proj . (x + bias), dbias = column sums of proj
      Tensor db2 = a.f32(c);
      be.biasBackward(db2, a.of(projF), n, c);
      Tensor y = a.f32(n * c);
      assertGradFd("bias dbias", db2.toFloatArray(), bias.clone(), 1e-2f, 11, r, v -> {
        be.copy(y, tx);
        tb.copyFrom(v);
        be.biasAdd(y, tb, n, c);
        return dot(proj, y.toFloatArray());
      });
    }
  }
}
