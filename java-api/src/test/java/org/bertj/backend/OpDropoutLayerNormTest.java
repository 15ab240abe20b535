package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * dropout_layernorm_forward / _backward (dropout fused into the residual layer norm): against a
 * double-precision reference with the Java Philox mask, against finite differences, and bit for
 * bit against the unfused dropout then layer norm (layer norm backward then dropout backward).
 * Also the bf16 side outputs (outLow, dyLow) against toBf16 of the fp32 outputs, and the
 * backward's dbiasY (column sums of dy accumulated: on the CPU bit for bit biasBackward of dy).
 */
class OpDropoutLayerNormTest extends OpTestBase {

  /** n, c, p, residual. */
  static Stream<Arguments> shapes() {
    return Stream.of(
        Arguments.of(1, 8, 0.1f, true),
        Arguments.of(5, 13, 0.5f, true),     // C not a multiple of 8
        Arguments.of(7, 100, 0.0f, true),    // p = 0: the layer norm alone
        Arguments.of(4, 768, 0.1f, false),   // no residual
        Arguments.of(33, 770, 0.1f, true),   // over the OpenMP threshold
        Arguments.of(3, 1500, 0.9f, true));  // more than one draw chunk per row
  }

  @ParameterizedTest(name = "N={0} C={1} p={2} residual={3}")
  @MethodSource("shapes")
  void forwardAndBackwardMatchReference(int n, int c, float p, boolean withRes) {
    Random r = new Random(17L * n + c);
    float eps = 1e-12f;
    long seed = 0x1234_5678_9ABCL, offset = 1_000_003L;
    float[] y = randn(r, n * c, 2.0), res = withRes ? randn(r, n * c) : null;
    float[] gamma = uniform(r, c, 0.5, 1.5), beta = randn(r, c), dout = randn(r, n * c);
    float[] dg0 = randn(r, c), db0 = randn(r, c);
    double[] yd = new double[n * c];
    boolean[] keep = new boolean[n * c];
    for (int i = 0; i < yd.length; i++) {
      keep[i] = OpRef.keep(p, seed, offset + i);
      yd[i] = keep[i] ? y[i] / (1.0 - p) : 0.0;
    }
    String tag = "dropout+ln N" + n + " C" + c + " p" + p + (withRes ? " +res" : "");
    try (Arena a = new Arena(be)) {
      Tensor out = a.f32(n, c), mean = a.f32(n), rstd = a.f32(n), hsave = a.f32(n, c);
      Tensor ty = a.of(y), tRes = withRes ? a.of(res) : null, tg = a.of(gamma), tb = a.of(beta);
      be.dropoutLayerNormForward(out, mean, rstd, hsave, ty, tRes, tg, tb, n, c, eps, p, seed,
          offset);
      OpRef.LayerNorm ref = OpRef.layerNorm(yd, res, gamma, beta, n, c, eps);
      assertClose(tag + " out", out.toFloatArray(), ref.out(), FWD_TOL);
      assertClose(tag + " mean", mean.toFloatArray(), ref.mean(), FWD_TOL);
      assertClose(tag + " rstd", rstd.toFloatArray(), ref.rstd(), FWD_TOL);
      assertClose(tag + " h", hsave.toFloatArray(), ref.h(), FWD_TOL);

      Tensor dh = a.f32(n, c), dy = a.f32(n, c), dg = a.of(dg0), db = a.of(db0);
      be.dropoutLayerNormBackward(dh, dy, dg, db, a.of(dout), hsave, mean, rstd, tg, n, c, p,
          seed, offset);
      double[] rdg = toDouble(dg0), rdb = toDouble(db0);
      double[] rdh = OpRef.layerNormBackward(rdg, rdb, dout, ref.h(), gamma, n, c, eps);
      double[] rdy = new double[n * c];
      for (int i = 0; i < rdy.length; i++) {
        rdy[i] = keep[i] ? rdh[i] / (1.0 - p) : 0.0;
      }
      assertClose(tag + " dh", dh.toFloatArray(), rdh, BWD_TOL);
      assertClose(tag + " dy", dy.toFloatArray(), rdy, BWD_TOL);
      assertClose(tag + " dgamma", dg.toFloatArray(), rdg, BWD_TOL);
      assertClose(tag + " dbeta", db.toFloatArray(), rdb, BWD_TOL);
      // dbiasY += column sums of dy, from a nonzero start
      float[] dby0 = randn(r, c);
      double[] rdby = toDouble(dby0);
      for (int i = 0; i < rdy.length; i++) {
        rdby[i % c] += rdy[i];
      }
      Tensor dh2 = a.f32(n, c), dy2 = a.f32(n, c), dby = a.of(dby0);
      be.dropoutLayerNormBackward(dh2, dy2, null, a.of(dg0), a.of(db0), dby, a.of(dout), hsave,
          mean, rstd, tg, n, c, p, seed, offset);
      assertClose(tag + " dbiasY", dby.toFloatArray(), rdby, BWD_TOL);
      assertArrayEquals(dy.toFloatArray(), dy2.toFloatArray(), tag + " dy with dbiasY");
    }
  }

  /** n, c, p. */
  static Stream<Arguments> fusedShapes() {
    return Stream.of(Arguments.of(1, 8, 0.1f), Arguments.of(9, 384, 0.1f),
        Arguments.of(40, 768, 0.1f), Arguments.of(6, 1030, 0.5f), Arguments.of(5, 64, 0.0f));
  }

  @ParameterizedTest(name = "N={0} C={1} p={2}")
  @MethodSource("fusedShapes")
  void fusedIsBitIdenticalToDropoutThenLayerNorm(int n, int c, float p) {
    Random r = new Random(5L * n + c);
    float eps = 1e-12f;
    long seed = 42L, offset = (1L << 32) - 100; // crosses into the counter's high word
    float[] y = randn(r, n * c), res = randn(r, n * c), gamma = randn(r, c), beta = randn(r, c);
    float[] dout = randn(r, n * c), dg0 = randn(r, c), db0 = randn(r, c);
    try (Arena a = new Arena(be)) {
      Tensor tRes = a.of(res), tg = a.of(gamma), tb = a.of(beta);
      // unfused: dropout into a copy, then the residual layer norm
      Tensor ud = a.f32(n, c), uout = a.f32(n, c), um = a.f32(n), us = a.f32(n), uh = a.f32(n, c);
      be.dropoutForward(ud, a.of(y), p, seed, offset);
      be.layerNormForward(uout, um, us, uh, ud, tRes, tg, tb, n, c, eps);
      // fused, out aliasing y (as the model calls it)
      Tensor fy = a.of(y), fm = a.f32(n), fs = a.f32(n), fh = a.f32(n, c);
      be.dropoutLayerNormForward(fy, fm, fs, fh, fy, tRes, tg, tb, n, c, eps, p, seed, offset);
      assertArrayEquals(uout.toFloatArray(), fy.toFloatArray(), "out");
      assertArrayEquals(uh.toFloatArray(), fh.toFloatArray(), "h");
      assertArrayEquals(um.toFloatArray(), fm.toFloatArray(), "mean");
      assertArrayEquals(us.toFloatArray(), fs.toFloatArray(), "rstd");

      Tensor udh = a.f32(n, c), udy = a.f32(n, c), udg = a.of(dg0), udb = a.of(db0);
      be.layerNormBackward(udh, udg, udb, a.of(dout), uh, um, us, tg, n, c);
      be.dropoutBackward(udy, udh, p, seed, offset);
      // fused, dh aliasing dout
      Tensor fdout = a.of(dout), fdy = a.f32(n, c), fdg = a.of(dg0), fdb = a.of(db0);
      be.dropoutLayerNormBackward(fdout, fdy, fdg, fdb, fdout, fh, fm, fs, tg, n, c, p, seed,
          offset);
      assertArrayEquals(udh.toFloatArray(), fdout.toFloatArray(), "dh");
      assertArrayEquals(udy.toFloatArray(), fdy.toFloatArray(), "dy");
      assertArrayEquals(udg.toFloatArray(), fdg.toFloatArray(), "dgamma");
      assertArrayEquals(udb.toFloatArray(), fdb.toFloatArray(), "dbeta");
      // dy may alias dout; dy may be null
      Tensor d2 = a.of(dout), dh2 = a.f32(n, c), g2 = a.of(dg0), b2 = a.of(db0);
      be.dropoutLayerNormBackward(dh2, d2, g2, b2, d2, fh, fm, fs, tg, n, c, p, seed, offset);
      assertArrayEquals(udy.toFloatArray(), d2.toFloatArray(), "dy aliasing dout");
      assertArrayEquals(udh.toFloatArray(), dh2.toFloatArray(), "dh with dy aliasing dout");
      Tensor dh3 = a.f32(n, c), g3 = a.of(dg0), b3 = a.of(db0);
      be.dropoutLayerNormBackward(dh3, null, g3, b3, a.of(dout), fh, fm, fs, tg, n, c, p, seed,
          offset);
      assertArrayEquals(udh.toFloatArray(), dh3.toFloatArray(), "dh with dy null");
      assertArrayEquals(udg.toFloatArray(), g3.toFloatArray(), "dgamma with dy null");
      // dbiasY (from a nonzero start): biasBackward of dy, bit for bit on the CPU; the other
      // outputs unchanged; with dh aliasing dout, and with dy aliasing dout
      float[] dby0 = randn(r, c);
      Tensor ub = a.of(dby0);
      be.biasBackward(ub, udy, n, c);
      Tensor d4 = a.of(dout), dy4 = a.f32(n, c), g4 = a.of(dg0), b4 = a.of(db0), y4 = a.of(dby0);
      be.dropoutLayerNormBackward(d4, dy4, null, g4, b4, y4, d4, fh, fm, fs, tg, n, c, p, seed,
          offset);
      assertArrayEquals(ub.toFloatArray(), y4.toFloatArray(), "dbiasY = biasBackward(dy)");
      assertArrayEquals(udh.toFloatArray(), d4.toFloatArray(), "dh with dbiasY");
      assertArrayEquals(udy.toFloatArray(), dy4.toFloatArray(), "dy with dbiasY");
      assertArrayEquals(udg.toFloatArray(), g4.toFloatArray(), "dgamma with dbiasY");
      assertArrayEquals(udb.toFloatArray(), b4.toFloatArray(), "dbeta with dbiasY");
      Tensor d5 = a.of(dout), dh5 = a.f32(n, c), y5 = a.of(dby0);
      be.dropoutLayerNormBackward(dh5, d5, null, a.of(dg0), a.of(db0), y5, d5, fh, fm, fs, tg, n,
          c, p, seed, offset);
      assertArrayEquals(ub.toFloatArray(), y5.toFloatArray(), "dbiasY with dy aliasing dout");
      assertArrayEquals(udy.toFloatArray(), d5.toFloatArray(), "dy aliasing dout with dbiasY");
    }
  }

  /**
   * The bf16 side outputs (outLow, dyLow): bit for bit toBf16 of out and dy, which (and every other
   * output) are the same as without them; out aliasing y and dh aliasing dout as the model calls
   * it.
   */
  @ParameterizedTest(name = "N={0} C={1} p={2}")
  @MethodSource("fusedShapes")
  void bf16SideOutputsAreToBf16OfTheOutputs(int n, int c, float p) {
    Random r = new Random(11L * n + c);
    float eps = 1e-12f;
    long seed = 4242L, offset = 77L;
    float[] y = randn(r, n * c), res = randn(r, n * c), gamma = randn(r, c), beta = randn(r, c);
    float[] dout = randn(r, n * c), dg0 = randn(r, c), db0 = randn(r, c);
    String tag = "dropout+ln bf16 N" + n + " C" + c + " p" + p;
    try (Arena a = new Arena(be)) {
      Tensor tRes = a.of(res), tg = a.of(gamma), tb = a.of(beta);
      Tensor y1 = a.of(y), m1 = a.f32(n), s1 = a.f32(n), h1 = a.f32(n, c);
      be.dropoutLayerNormForward(y1, m1, s1, h1, y1, tRes, tg, tb, n, c, eps, p, seed, offset);
      Tensor y2 = a.of(y), m2 = a.f32(n), s2 = a.f32(n), h2 = a.f32(n, c);
      Tensor low = a.bf16((long) n * c);
      be.dropoutLayerNormForward(y2, low, m2, s2, h2, y2, tRes, tg, tb, n, c, eps, p, seed,
          offset);
      assertArrayEquals(y1.toFloatArray(), y2.toFloatArray(), tag + " out");
      assertArrayEquals(m1.toFloatArray(), m2.toFloatArray(), tag + " mean");
      assertArrayEquals(s1.toFloatArray(), s2.toFloatArray(), tag + " rstd");
      assertArrayEquals(h1.toFloatArray(), h2.toFloatArray(), tag + " h");
      assertIsToBf16Of(tag + " outLow", low, y1);

      Tensor d1 = a.of(dout), dy1 = a.f32(n, c), g1 = a.of(dg0), b1 = a.of(db0);
      be.dropoutLayerNormBackward(d1, dy1, g1, b1, d1, h1, m1, s1, tg, n, c, p, seed, offset);
      Tensor d2 = a.of(dout), dy2 = a.f32(n, c), g2 = a.of(dg0), b2 = a.of(db0);
      Tensor dyLow = a.bf16((long) n * c);
      be.dropoutLayerNormBackward(d2, dy2, dyLow, g2, b2, d2, h1, m1, s1, tg, n, c, p, seed,
          offset);
      assertArrayEquals(d1.toFloatArray(), d2.toFloatArray(), tag + " dh");
      assertArrayEquals(dy1.toFloatArray(), dy2.toFloatArray(), tag + " dy");
      assertArrayEquals(g1.toFloatArray(), g2.toFloatArray(), tag + " dgamma");
      assertArrayEquals(b1.toFloatArray(), b2.toFloatArray(), tag + " dbeta");
      assertIsToBf16Of(tag + " dyLow", dyLow, dy1);
    }
  }

  @Test
  void backwardMatchesFiniteDifferences() {
    int n = 3, c = 24;
    float p = 0.25f, eps = 1e-5f;
    long seed = 9L, offset = 3L;
    Random r = new Random(77);
    float[] y = randn(r, n * c), res = randn(r, n * c);
    float[] gamma = uniform(r, c, 0.5, 1.5), beta = randn(r, c);
    float[] projF = randn(r, n * c);
    double[] proj = toDouble(projF);
    String tag = "dropout+ln N" + n + " C" + c;
    try (Arena a = new Arena(be)) {
      Tensor out = a.f32(n, c), mean = a.f32(n), rstd = a.f32(n), hsave = a.f32(n, c);
      Tensor ty = a.of(y), tRes = a.of(res), tg = a.of(gamma), tb = a.of(beta);
      be.dropoutLayerNormForward(out, mean, rstd, hsave, ty, tRes, tg, tb, n, c, eps, p, seed,
          offset);
      Tensor dh = a.f32(n, c), dy = a.f32(n, c), dg = a.f32(c), db = a.f32(c);
      be.dropoutLayerNormBackward(dh, dy, dg, db, a.of(projF), hsave, mean, rstd, tg, n, c, p,
          seed, offset);
      Tensor m2 = a.f32(n), s2 = a.f32(n);
      ToLoss loss = () -> {
        be.dropoutLayerNormForward(out, m2, s2, null, ty, tRes, tg, tb, n, c, eps, p, seed,
            offset);
        return dot(proj, out.toFloatArray());
      };
      assertGradFd(tag + " dy", dy.toFloatArray(), y.clone(), 1e-2f, 72, r, v -> {
        ty.copyFrom(v);
        return loss.get();
      });
      ty.copyFrom(y);
      assertGradFd(tag + " dresidual", dh.toFloatArray(), res.clone(), 1e-2f, 72, r, v -> {
        tRes.copyFrom(v);
        return loss.get();
      });
      tRes.copyFrom(res);
      assertGradFd(tag + " dgamma", dg.toFloatArray(), gamma.clone(), 1e-2f, 24, r, v -> {
        tg.copyFrom(v);
        return loss.get();
      });
      tg.copyFrom(gamma);
      assertGradFd(tag + " dbeta", db.toFloatArray(), beta.clone(), 1e-2f, 24, r, v -> {
        tb.copyFrom(v);
        return loss.get();
      });
      // dropped elements get no gradient
      float[] gy = dy.toFloatArray();
      for (int i = 0; i < gy.length; i++) {
        if (!OpRef.keep(p, seed, offset + i)) {
          assertTrue(gy[i] == 0f, "dy of dropped element " + i + " is " + gy[i]);
        }
      }
    }
  }

  private interface ToLoss {
    double get();
  }

  @Test
  void badArgumentsAreRejectedInJava() {
    int n = 2, c = 4;
    try (Arena a = new Arena(be)) {
      Tensor x = a.f32(n, c), v = a.f32(n), g = a.f32(c), small = a.f32(n, c - 1);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> be.dropoutLayerNormForward(x, v, v, x, x, x, g, g, n, c, 1e-5f, 1f, 0, 0));
      assertTrue(e.getMessage().contains("dropout probability"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.dropoutLayerNormForward(x, v, v, x, small, x, g, g, n, c, 1e-5f, 0.1f, 0, 0));
      assertTrue(e.getMessage().startsWith("y must have 8 elements"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.dropoutLayerNormBackward(x, x, g, g, x, x, v, v, g, n, c, 0.1f, 0, 0));
      assertTrue(e.getMessage().contains("dy must not alias dh"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.dropoutLayerNormBackward(x, small, g, g, x, x, v, v, g, n, c, 0.1f, 0, 0));
      assertTrue(e.getMessage().startsWith("dy must have 8 elements"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.dropoutLayerNormBackward(x, null, g, g, x, x, v, v, g, 0, c, 0.1f, 0, 0));
      assertTrue(e.getMessage().contains("n must be > 0"), e.getMessage());
      assertThrows(IllegalArgumentException.class,
          () -> be.dropoutLayerNormBackward(x, null, g, g, x, x, v, v, g, n, c, -0.1f, 0, 0));
      // bf16 side outputs: BF16, n * c elements; dyLow needs dy
      Tensor low = a.bf16(n * c), smallLow = a.bf16(n * c - 1), dy = a.f32(n, c);
      e = assertThrows(IllegalArgumentException.class,
          () -> be.dropoutLayerNormForward(x, dy, v, v, x, x, x, g, g, n, c, 1e-5f, 0.1f, 0, 0));
      assertTrue(e.getMessage().contains("outLow must be BF16"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> be.dropoutLayerNormForward(x,
          smallLow, v, v, x, x, x, g, g, n, c, 1e-5f, 0.1f, 0, 0));
      assertTrue(e.getMessage().startsWith("outLow must have 8 elements"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.dropoutLayerNormBackward(x, dy, x, g, g, x, x, v, v, g, n, c, 0.1f, 0, 0));
      assertTrue(e.getMessage().contains("dyLow must be BF16"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> be.dropoutLayerNormBackward(x, dy,
          smallLow, g, g, x, x, v, v, g, n, c, 0.1f, 0, 0));
      assertTrue(e.getMessage().startsWith("dyLow must have 8 elements"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> be.dropoutLayerNormBackward(x, null, low, g, g, x, x, v, v, g, n, c, 0.1f, 0, 0));
      assertTrue(e.getMessage().contains("dyLow needs dy"), e.getMessage());
      // dbiasY: F32, c elements; needs dy
      Tensor smallG = a.f32(c - 1), lowG = a.bf16(c);
      e = assertThrows(IllegalArgumentException.class, () -> be.dropoutLayerNormBackward(x, null,
          null, g, g, g, x, x, v, v, g, n, c, 0.1f, 0, 0));
      assertTrue(e.getMessage().contains("dbiasY needs dy"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> be.dropoutLayerNormBackward(x, dy,
          null, g, g, smallG, x, x, v, v, g, n, c, 0.1f, 0, 0));
      assertTrue(e.getMessage().startsWith("dbiasY must have 4 elements"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> be.dropoutLayerNormBackward(x, dy,
          null, g, g, lowG, x, x, v, v, g, n, c, 0.1f, 0, 0));
      assertTrue(e.getMessage().contains("dbiasY must be F32"), e.getMessage());
    }
  }
}
