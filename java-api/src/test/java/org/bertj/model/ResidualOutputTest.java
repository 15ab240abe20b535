package org.bertj.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Arrays;
import java.util.Random;
import org.bertj.backend.CpuBackend;
import org.bertj.backend.DType;
import org.bertj.backend.Precision;
import org.bertj.backend.Tensor;
import org.bertj.io.BertConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * ResidualOutput's backward with dropout, where the LayerNorm backward's pass also sums the dense
 * bias gradient (dbiasY) and the dense backward runs without it: on the CPU every output and
 * gradient has the same bits as the LayerNorm backward followed by the dense layer's full backward
 * (with its bias gradient), in fp32 and bf16 precision, from nonzero starting gradients.
 */
class ResidualOutputTest {

  @ParameterizedTest(name = "N={0} in={1} C={2} p={3} {4}")
  @CsvSource({"12,40,24,0.1,FP32", "7,24,16,0.5,FP32", "12,40,24,0.1,BF16", "9,32,8,0.0,FP32"})
  void fusedBiasGradientIsTheDenseBackwardsOne(int n, int in, int c, float p, Precision prec) {
    BertConfig cfg = BertConfig.builder().setVocabSize(8).setHiddenSize(c).setNumHiddenLayers(1)
        .setNumAttentionHeads(1).setIntermediateSize(in).optHiddenDropoutProb(p).build();
    Parameters.Layout layout = new Parameters.Layout();
    ResidualOutput.declare(layout, "m.output", in, c);
    Random r = new Random(31L * n + c);
    try (CpuBackend be = new CpuBackend();
        Parameters ps1 = Parameters.allocate(be, layout);
        Parameters ps2 = Parameters.allocate(be, layout);
        Arena acts1 = new Arena(be, DType.F32);
        Arena acts2 = new Arena(be, DType.F32)) {
      float[] theta = randn(r, (int) ps1.size(), 0.5);
      float[] g0 = randn(r, (int) ps1.size(), 1.0);  // nonzero starting gradients: "+="
      for (Parameters ps : new Parameters[] {ps1, ps2}) {
        be.upload(ps.values(), theta);
        be.upload(ps.grads(), g0);
        ps.setPrecision(prec);
      }
      BertOutput m1 = new BertOutput(ps1, "m.output", cfg);
      BertOutput m2 = new BertOutput(ps2, "m.output", cfg);
      ResidualOutput.Activations a1 = acts1.layout(() -> m1.activations(acts1, n));
      ResidualOutput.Activations a2 = acts2.layout(() -> m2.activations(acts2, n));
      float[] xv = randn(r, n * in, 1.0), resv = randn(r, n * c, 1.0);
      float[] doutv = randn(r, n * c, 1.0);
      Tensor x = be.alloc(DType.F32, n, in), res = be.alloc(DType.F32, n, c);
      Tensor dout = be.alloc(DType.F32, n, c);
      Tensor dh1 = be.alloc(DType.F32, n, c), tmp1 = be.alloc(DType.F32, n, c);
      Tensor dx1 = be.alloc(DType.F32, n, in);
      Tensor dh2 = be.alloc(DType.F32, n, c), tmp2 = be.alloc(DType.F32, n, c);
      Tensor dx2 = be.alloc(DType.F32, n, in);
      try {
        be.upload(x, xv);
        be.upload(res, resv);
        be.upload(dout, doutv);
        DropoutRng rng = new DropoutRng();
        rng.reset(true, 99L);
        m1.forward(a1, x, res, n, rng);
        rng.reset(true, 99L);
        m2.forward(a2, x, res, n, rng);
        assertArrayEquals(be.download(a1.out), be.download(a2.out), "forward");
        assertEquals(p, a1.p);

        m1.backward(a1, x, dout, dh1, tmp1, dx1, n, rng);
        // the previous sequence: the LayerNorm backward without dbiasY, then the dense layer's
        // backward with its bias gradient
        Tensor g = dh2;
        Tensor gLow = null;
        if (a2.p > 0f) {
          gLow = m2.dense.gradLow(n);
          m2.layerNorm.backwardDropout(dh2, tmp2, gLow, null, dout, a2.h, a2.mean, a2.rstd, n,
              a2.p, rng.seed(), a2.offset);
          g = tmp2;
        } else {
          m2.layerNorm.backward(dh2, dout, a2.h, a2.mean, a2.rstd, n);
        }
        m2.dense.backward(dx2, g, gLow, x, n, false);

        assertArrayEquals(be.download(dh2), be.download(dh1), "dh");
        assertArrayEquals(be.download(dx2), be.download(dx1), "dx");
        if (a1.p > 0f) {
          assertArrayEquals(be.download(tmp2), be.download(tmp1), "dy (tmp)");
        }
        for (Parameter q : ps1.list()) {
          float[] want = be.download(ps2.get(q.name()).grad());
          float[] got = be.download(q.grad());
          assertArrayEquals(want, got, q.name() + " gradient");
        }
        float[] db = be.download(m1.dense.bias.grad());
        float[] db0 = Arrays.copyOfRange(g0, (int) m1.dense.bias.offset(),
            (int) (m1.dense.bias.offset() + c));
        assertFalse(Arrays.equals(db0, db), "the dense bias gradient was accumulated");
      } finally {
        for (Tensor t : new Tensor[] {x, res, dout, dh1, tmp1, dx1, dh2, tmp2, dx2}) {
          t.close();
        }
      }
    }
  }

  private static float[] randn(Random r, int n, double sd) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (r.nextGaussian() * sd);
    }
    return v;
  }
}
