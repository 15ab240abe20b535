package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** layernorm_forward (with and without residual) and layernorm_backward. */
class OpLayerNormTest extends OpTestBase {

  /** n, c, residual, eps. */
  static Stream<Arguments> shapes() {
    return Stream.of(
        Arguments.of(1, 8, false, 1e-12f),   // one row
        Arguments.of(3, 1, true, 1e-5f),     // C = 1: zero variance, out = beta
        Arguments.of(5, 13, true, 1e-12f),   // C not a multiple of 8
        Arguments.of(7, 100, false, 1e-5f),
        Arguments.of(4, 768, true, 1e-12f),  // BERT-base width
        Arguments.of(33, 770, true, 1e-12f)); // over the OpenMP threshold, C % 8 != 0
  }

  @ParameterizedTest(name = "N={0} C={1} residual={2} eps={3}")
  @MethodSource("shapes")
  void forwardAndBackwardMatchReference(int n, int c, boolean withRes, float eps) {
    Random r = new Random(11L * n + c);
    float[] x = randn(r, n * c, 2.0), res = withRes ? randn(r, n * c) : null;
    // a shift makes the mean non-trivial
    for (int i = 0; i < x.length; i++) {
      x[i] += 3f;
    }
    float[] gamma = randn(r, c), beta = randn(r, c), dout = randn(r, n * c);
    float[] dg0 = randn(r, c), db0 = randn(r, c);
    String tag = "ln N" + n + " C" + c + (withRes ? " +res" : "");
    try (Arena a = new Arena(be)) {
      Tensor out = a.f32(n, c), mean = a.f32(n), rstd = a.f32(n), hsave = a.f32(n, c);
      Tensor tx = a.of(x), tRes = withRes ? a.of(res) : null, tg = a.of(gamma), tb = a.of(beta);
      be.layerNormForward(out, mean, rstd, hsave, tx, tRes, tg, tb, n, c, eps);
      OpRef.LayerNorm ref = OpRef.layerNorm(x, res, gamma, beta, n, c, eps);
      assertClose(tag + " out", out.toFloatArray(), ref.out(), FWD_TOL);
      assertClose(tag + " mean", mean.toFloatArray(), ref.mean(), FWD_TOL);
      assertClose(tag + " rstd", rstd.toFloatArray(), ref.rstd(), FWD_TOL);
      assertClose(tag + " hsave", hsave.toFloatArray(), ref.h(), FWD_TOL);

      // out may alias x: same bits as out of place. hsave may be null.
      Tensor inplace = a.of(x);
      Tensor mean2 = a.f32(n), rstd2 = a.f32(n);
      be.layerNormForward(inplace, mean2, rstd2, null, inplace, tRes, tg, tb, n, c, eps);
      assertArrayEquals(out.toFloatArray(), inplace.toFloatArray(), "out aliasing x");
      assertArrayEquals(rstd.toFloatArray(), rstd2.toFloatArray(), "rstd with out aliasing x");

      Tensor dh = a.f32(n, c), dg = a.of(dg0), db = a.of(db0);
      be.layerNormBackward(dh, dg, db, a.of(dout), hsave, mean, rstd, tg, n, c);
      double[] rdg = toDouble(dg0), rdb = toDouble(db0);
      double[] rdh = OpRef.layerNormBackward(rdg, rdb, dout, ref.h(), gamma, n, c, eps);
      assertClose(tag + " dh", dh.toFloatArray(), rdh, BWD_TOL);
      assertClose(tag + " dgamma", dg.toFloatArray(), rdg, BWD_TOL);
      assertClose(tag + " dbeta", db.toFloatArray(), rdb, BWD_TOL);
    }
  }

  /** n, c. */
  static Stream<Arguments> fdShapes() {
    return Stream.of(Arguments.of(1, 8), Arguments.of(4, 13), Arguments.of(3, 64));
  }

  @ParameterizedTest(name = "N={0} C={1}")
  @MethodSource("fdShapes")
  void backwardMatchesFiniteDifferences(int n, int c) {
    Random r = new Random(3L * n + c);
    float eps = 1e-5f;
    float[] x = randn(r, n * c), res = randn(r, n * c);
    float[] gamma = uniform(r, c, 0.5, 1.5), beta = randn(r, c);
    float[] projF = randn(r, n * c);
    double[] proj = toDouble(projF);
    String tag = "ln N" + n + " C" + c;
    try (Arena a = new Arena(be)) {
      Tensor out = a.f32(n, c), mean = a.f32(n), rstd = a.f32(n), hsave = a.f32(n, c);
      Tensor tx = a.of(x), tRes = a.of(res), tg = a.of(gamma), tb = a.of(beta);
      be.layerNormForward(out, mean, rstd, hsave, tx, tRes, tg, tb, n, c, eps);
      Tensor dh = a.f32(n, c), dg = a.f32(c), db = a.f32(c);
      be.layerNormBackward(dh, dg, db, a.of(projF), hsave, mean, rstd, tg, n, c);
      float[] gdh = dh.toFloatArray();

      Tensor m2 = a.f32(n), s2 = a.f32(n);
      // dh is the gradient of both x and residual
      assertGradFd(tag + " dx", gdh, x.clone(), 1e-2f, 64, r, v -> {
        tx.copyFrom(v);
        be.layerNormForward(out, m2, s2, null, tx, tRes, tg, tb, n, c, eps);
        return dot(proj, out.toFloatArray());
      });
      tx.copyFrom(x);
      assertGradFd(tag + " dresidual", gdh, res.clone(), 1e-2f, 64, r, v -> {
        tRes.copyFrom(v);
        be.layerNormForward(out, m2, s2, null, tx, tRes, tg, tb, n, c, eps);
        return dot(proj, out.toFloatArray());
      });
      tRes.copyFrom(res);
      assertGradFd(tag + " dgamma", dg.toFloatArray(), gamma.clone(), 1e-2f, 64, r, v -> {
        tg.copyFrom(v);
        be.layerNormForward(out, m2, s2, null, tx, tRes, tg, tb, n, c, eps);
        return dot(proj, out.toFloatArray());
      });
      tg.copyFrom(gamma);
      assertGradFd(tag + " dbeta", db.toFloatArray(), beta.clone(), 1e-2f, 64, r, v -> {
        tb.copyFrom(v);
        be.layerNormForward(out, m2, s2, null, tx, tRes, tg, tb, n, c, eps);
        return dot(proj, out.toFloatArray());
      });
    }
  }
}
