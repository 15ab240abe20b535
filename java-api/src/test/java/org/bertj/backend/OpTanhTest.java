package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** tanh_forward / tanh_backward (the pooler activation). */
class OpTanhTest extends OpTestBase {

  @ParameterizedTest(name = "n={0}")
  @ValueSource(ints = {1, 7, 768, 1001, 40_003}) // the last one is over the OpenMP threshold
  void forwardAndBackwardMatchReference(int n) {
    Random r = new Random(n);
    float[] x = randn(r, n, 2.0), dout = randn(r, n);
    x[0] = n > 1 ? 30f : x[0]; // saturated: out = 1, gradient 0
    String tag = "tanh n" + n;
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), out = a.f32(n);
      be.tanhForward(out, tx);
      double[] ref = new double[n];
      for (int i = 0; i < n; i++) {
        ref[i] = Math.tanh(x[i]);
      }
      float[] outF = out.toFloatArray();
      assertClose(tag + " fwd", outF, ref, FWD_TOL);

      Tensor dx = a.f32(n), tdout = a.of(dout);
      be.tanhBackward(dx, tdout, out);
      double[] refDx = new double[n];
      for (int i = 0; i < n; i++) {
        refDx[i] = dout[i] * (1 - ref[i] * ref[i]);
      }
      assertClose(tag + " bwd", dx.toFloatArray(), refDx, BWD_TOL);

      // in place (out aliasing x, dx aliasing dout): the same bits
      be.tanhForward(tx, tx);
      assertArrayEquals(outF, tx.toFloatArray(), "out aliasing x");
      float[] dxF = dx.toFloatArray();
      be.tanhBackward(tdout, tdout, out);
      assertArrayEquals(dxF, tdout.toFloatArray(), "dx aliasing dout");
    }
  }

  @Test
  void backwardMatchesFiniteDifferences() {
    int n = 50;
    Random r = new Random(29);
    float[] x = randn(r, n, 1.5), projF = randn(r, n);
    double[] proj = toDouble(projF);
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), out = a.f32(n), dx = a.f32(n);
      be.tanhForward(out, tx);
      be.tanhBackward(dx, a.of(projF), out);
      assertGradFd("tanh dx", dx.toFloatArray(), x.clone(), 1e-2f, n, r, v -> {
        tx.copyFrom(v);
        be.tanhForward(out, tx);
        return dot(proj, out.toFloatArray());
      });
    }
  }
}
