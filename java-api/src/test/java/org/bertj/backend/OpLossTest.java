package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** cross_entropy (ignored label -1), bce_with_logits, mse: losses, gradients, NULL gradients. */
class OpLossTest extends OpTestBase {

  /** b, l, logit scale, grad scale. */
  static Stream<Arguments> ceShapes() {
    return Stream.of(
        Arguments.of(1, 1, 1.0, 1.0f),     // one class: loss 0, gradient 0
        Arguments.of(1, 2, 1.0, 1.0f),
        Arguments.of(32, 2, 2.0, 1f / 32),  // the BERT fine-tuning head
        Arguments.of(5, 7, 1.0, 0.5f),
        Arguments.of(9, 3, 60.0, 1.0f),    // large logits: the log-softmax must be stable
        Arguments.of(2000, 13, 3.0, 1e-3f)); // over the OpenMP threshold
  }

  @ParameterizedTest(name = "B={0} L={1} scale={2} gradScale={3}")
  @MethodSource("ceShapes")
  void crossEntropyMatchesReference(int b, int l, double scale, float gradScale) {
    Random r = new Random(13L * b + l);
    float[] logits = randn(r, b * l, scale);
    int[] labels = randInts(r, b, l);
    if (b > 2) {
      labels[1] = -1; // ignored rows
      labels[b - 1] = -1;
    }
    String tag = "ce B" + b + " L" + l + " x" + scale;
    try (Arena a = new Arena(be)) {
      Tensor tl = a.of(logits), ty = a.of(labels), losses = a.f32(b), dl = a.f32(b, l);
      be.fill(dl, Float.NaN); // "=": every element written, ignored rows included
      be.crossEntropy(losses, dl, tl, ty, b, l, gradScale);
      double[] refD = new double[b * l];
      double[] ref = OpRef.crossEntropy(refD, logits, labels, b, l, gradScale);
      float[] lossF = losses.toFloatArray();
      assertClose(tag + " losses", lossF, ref, FWD_TOL);
      assertClose(tag + " dlogits", dl.toFloatArray(), refD, BWD_TOL);
      for (int i = 0; i < b; i++) {
        if (labels[i] < 0) {
          assertEquals(0f, lossF[i], "ignored row's loss");
        }
      }
      // no gradient: the same losses
      Tensor losses2 = a.f32(b);
      be.crossEntropy(losses2, null, tl, ty, b, l, gradScale);
      assertArrayEquals(lossF, losses2.toFloatArray(), "losses without dlogits");
    }
  }

  @Test
  void crossEntropyAllIgnoredIsZero() {
    try (Arena a = new Arena(be)) {
      Tensor losses = a.f32(3), dl = a.f32(3, 2);
      be.fill(dl, 5f);
      be.crossEntropy(losses, dl, a.of(new float[] {1, 2, 3, 4, 5, 6}), a.of(new int[] {-1, -1, -7}),
          3, 2, 1f);
      assertArrayEquals(new float[3], losses.toFloatArray());
      assertArrayEquals(new float[6], dl.toFloatArray());
    }
  }

  @Test
  void crossEntropyGradientMatchesFiniteDifferences() {
    int b = 6, l = 5;
    float gradScale = 1f / 5; // a mean over the 5 counted rows
    Random r = new Random(43);
    float[] logits = randn(r, b * l, 2.0);
    int[] labels = randInts(r, b, l);
    labels[2] = -1;
    try (Arena a = new Arena(be)) {
      Tensor tl = a.of(logits), ty = a.of(labels), losses = a.f32(b), dl = a.f32(b, l);
      be.crossEntropy(losses, dl, tl, ty, b, l, gradScale);
      assertGradFd("ce dlogits", dl.toFloatArray(), logits.clone(), 1e-2f, b * l, r, v -> {
        tl.copyFrom(v);
        be.crossEntropy(losses, null, tl, ty, b, l, gradScale);
        return gradScale * sum(losses.toFloatArray());
      });
    }
  }

  @ParameterizedTest(name = "n={0}")
  @ValueSource(ints = {1, 7, 64, 40_001})
  void bceWithLogitsMatchesReference(int n) {
    Random r = new Random(n + 1);
    float[] x = randn(r, n, 3.0);
    float[] y = uniform(r, n, 0, 1); // soft targets
    for (int i = 0; i < n; i += 3) {
      y[i] = r.nextBoolean() ? 1f : 0f; // and hard ones
    }
    if (n > 4) {
      x[0] = 40f; // saturated both ways: no overflow, no NaN
      x[1] = -40f;
      x[2] = 90f;
      x[3] = -90f;
    }
    float gradScale = 1f / n;
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), ty = a.of(y), losses = a.f32(n), dl = a.f32(n);
      be.bceWithLogits(losses, dl, tx, ty, gradScale);
      double[] refD = new double[n];
      double[] ref = OpRef.bce(refD, x, y, gradScale);
      float[] lossF = losses.toFloatArray();
      assertClose("bce n" + n + " losses", lossF, ref, FWD_TOL);
      assertClose("bce n" + n + " dlogits", dl.toFloatArray(), refD, BWD_TOL);
      Tensor losses2 = a.f32(n);
      be.bceWithLogits(losses2, null, tx, ty, gradScale);
      assertArrayEquals(lossF, losses2.toFloatArray(), "losses without dlogits");
    }
  }

  @ParameterizedTest(name = "n={0}")
  @ValueSource(ints = {1, 7, 64, 40_001})
  void mseMatchesReference(int n) {
    Random r = new Random(n + 2);
    float[] x = randn(r, n, 2.0), y = randn(r, n);
    float gradScale = 1f / n;
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), ty = a.of(y), losses = a.f32(n), dp = a.f32(n);
      be.mse(losses, dp, tx, ty, gradScale);
      double[] refD = new double[n];
      double[] ref = OpRef.mse(refD, x, y, gradScale);
      float[] lossF = losses.toFloatArray();
      assertClose("mse n" + n + " losses", lossF, ref, FWD_TOL);
      assertClose("mse n" + n + " dpred", dp.toFloatArray(), refD, BWD_TOL);
      Tensor losses2 = a.f32(n);
      be.mse(losses2, null, tx, ty, gradScale);
      assertArrayEquals(lossF, losses2.toFloatArray(), "losses without dpred");
    }
  }

  @Test
  void bceAndMseGradientsMatchFiniteDifferences() {
    int n = 24;
    float gradScale = 0.25f;
    Random r = new Random(47);
    float[] x = randn(r, n, 2.0), y = uniform(r, n, 0, 1), t = randn(r, n);
    try (Arena a = new Arena(be)) {
      Tensor tx = a.of(x), ty = a.of(y), tt = a.of(t), losses = a.f32(n), g = a.f32(n);
      be.bceWithLogits(losses, g, tx, ty, gradScale);
      assertGradFd("bce dlogits", g.toFloatArray(), x.clone(), 1e-2f, n, r, v -> {
        tx.copyFrom(v);
        be.bceWithLogits(losses, null, tx, ty, gradScale);
        return gradScale * sum(losses.toFloatArray());
      });
      tx.copyFrom(x);
      be.mse(losses, g, tx, tt, gradScale);
      assertGradFd("mse dpred", g.toFloatArray(), x.clone(), 1e-2f, n, r, v -> {
        tx.copyFrom(v);
        be.mse(losses, null, tx, tt, gradScale);
        return gradScale * sum(losses.toFloatArray());
      });
    }
  }

  private static double sum(float[] v) {
    double s = 0;
    for (float f : v) {
      s += f;
    }
    return s;
  }
}
