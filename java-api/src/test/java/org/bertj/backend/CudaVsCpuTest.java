package org.bertj.backend;

import static org.bertj.backend.OpTestBase.bf16Bits;
import static org.bertj.backend.OpTestBase.fillBf16;
import static org.bertj.backend.OpTestBase.rawBits;
import static org.bertj.backend.OpTestBase.toBf16Bits;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Tier 2: every op on CUDA against the CPU backend on the same fresh random inputs (fp32: forward
 * within 1e-5, backward within 1e-4 relative; dropout masks identical). The ops' bf16 side
 * outputs hold exactly toBf16 of each backend's own fp32 output (the CUDA and CPU fp32 outputs
 * differ in the last bits, so the two bf16 copies are compared with a tolerance). Skipped,
 * visibly, where no CUDA device answers.
 */
class CudaVsCpuTest {
  private static CpuBackend cpu;
  private static CudaBackend gpu;
  private final List<Tensor> open = new ArrayList<>();
  private final Random rnd = new Random(1234);

  private static String why;

  @BeforeAll
  static void start() {
    why = CudaProbe.unavailableReason();
    if (why == null) {
      cpu = new CpuBackend();
      gpu = new CudaBackend();
    }
  }

  @BeforeEach
  void needGpu() {
    assumeTrue(gpu != null, "skipped: no CUDA device (" + why + ")");
  }

  @AfterAll
  static void stop() {
    if (gpu != null) {
      gpu.close();
    }
  }

  @AfterEach
  void closeAll() {
    open.forEach(Tensor::close);
    open.clear();
    if (cpu != null) {
      assertEquals(0, cpu.liveTensors());
      assertEquals(0, gpu.liveTensors());
    }
  }

  /** The same tensor on both backends. */
  private final class P {
    final Tensor c;
    final Tensor g;

    P(DType dt, long... shape) {
      c = cpu.alloc(dt, shape);
      g = gpu.alloc(dt, shape);
      open.add(c);
      open.add(g);
    }
  }

  private P rand(long... shape) {
    P p = new P(DType.F32, shape);
    float[] v = new float[(int) p.c.numel()];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) rnd.nextGaussian();
    }
    p.c.copyFrom(v);
    p.g.copyFrom(v);
    return p;
  }

  private P zeros(long... shape) {
    return new P(DType.F32, shape);
  }

  private P ints(int[] v) {
    P p = new P(DType.I32, v.length);
    p.c.copyFrom(v);
    p.g.copyFrom(v);
    return p;
  }

  /** A copy of src on both backends. */
  private P copyOf(P src) {
    P p = new P(src.c.dtype(), src.c.shape());
    cpu.copy(p.c, src.c);
    gpu.copy(p.g, src.g);
    return p;
  }

  /** A BF16 tensor's values, widened exactly. */
  private static float[] widen(Tensor low) {
    int[] bits = bf16Bits(low);
    float[] f = new float[bits.length];
    for (int i = 0; i < f.length; i++) {
      f[i] = Float.intBitsToFloat(bits[i]);
    }
    return f;
  }

  /** Asserts that both sides of p still hold these raw bits. */
  private static void unchanged(String what, P p, int[] c, int[] g) {
    assertArrayEquals(c, rawBits(p.c.toFloatArray()), what + " (cpu) unchanged");
    assertArrayEquals(g, rawBits(p.g.toFloatArray()), what + " (cuda) unchanged");
  }

  /** Asserts that each backend's values of a and b have the same bits. */
  private static void sameBits(String what, P a, P b) {
    assertArrayEquals(a.c.toFloatArray(), b.c.toFloatArray(), what + " (cpu)");
    assertArrayEquals(a.g.toFloatArray(), b.g.toFloatArray(), what + " (cuda)");
  }

  /**
   * A bf16 side output (low) of the fp32 output f: on each backend bit for bit toBf16 of that
   * backend's f; CUDA's the same bits as the CPU's wherever the two fp32 values have the same
   * bits, elsewhere (fp32 within ~1e-6) within |gf - cf| + 2^-8 (|gf| + |cf|).
   */
  private void lowMatches(String what, P low, P f) {
    P want = new P(DType.BF16, low.c.numel());
    cpu.toBf16(want.c, f.c);
    gpu.toBf16(want.g, f.g);
    float[] lc = widen(low.c), lg = widen(low.g);
    assertArrayEquals(widen(want.c), lc, what + " = toBf16 (cpu)");
    assertArrayEquals(widen(want.g), lg, what + " = toBf16 (cuda)");
    float[] fc = f.c.toFloatArray(), fg = f.g.toFloatArray();
    for (int i = 0; i < lc.length; i++) {
      if (Float.floatToRawIntBits(lc[i]) == Float.floatToRawIntBits(lg[i])) {
        continue;
      }
      assertTrue(Float.floatToRawIntBits(fc[i]) != Float.floatToRawIntBits(fg[i]),
          what + ": bf16 differ at " + i + " where fp32 agree");
      double bound = Math.abs((double) fg[i] - fc[i]) + (Math.abs(fg[i]) + Math.abs(fc[i])) / 256;
      assertTrue(Math.abs((double) lg[i] - lc[i]) <= bound, what + ": bf16 at " + i + " "
          + lg[i] + " (cuda) vs " + lc[i] + " (cpu), fp32 " + fg[i] + " vs " + fc[i]);
    }
  }

  private static void close(String what, P p, double tol) {
    double[] e = relErr(p.c.toFloatArray(), p.g.toFloatArray());
    assertTrue(e[0] <= tol, what + ": relative error " + e[0] + " > " + tol);
  }

  static double[] relErr(float[] ref, float[] got) {
    double num = 0;
    double den = 0;
    for (int i = 0; i < ref.length; i++) {
      if (Float.isNaN(got[i]) || Float.isNaN(ref[i])) {
        return new double[] {Double.POSITIVE_INFINITY};
      }
      double d = (double) got[i] - ref[i];
      num += d * d;
      den += (double) ref[i] * ref[i];
    }
    return new double[] {den == 0 ? Math.sqrt(num) : Math.sqrt(num / den)};
  }

  @Test
  void gemmAllTransposes() {
    int m = 67, n = 45, k = 129;
    for (boolean ta : new boolean[] {false, true}) {
      for (boolean tb : new boolean[] {false, true}) {
        P a = rand(m * k);
        P b = rand(k * n);
        P c = rand(m * n);
        cpu.gemm(ta, tb, m, n, k, 1.5f, a.c, ta ? m : k, b.c, tb ? k : n, 0.5f, c.c, n);
        gpu.gemm(ta, tb, m, n, k, 1.5f, a.g, ta ? m : k, b.g, tb ? k : n, 0.5f, c.g, n);
        close("gemm ta=" + ta + " tb=" + tb, c, 1e-5);
      }
    }
  }

  /**
   * Linear layers with a bias through cuBLASLt's fused epilogue (bertj.cublaslt, on by default; a
   * backend of its own), fp32 and bf16, vs the CPU's GEMM + bias, at the smallest size that uses
   * it (CublasLt.TUNE_MIN_MACS multiply-adds).
   */
  @Test
  void linearWithFusedBias() {
    int n = 2048, in = 1024, out = 1024;
    assertTrue((long) n * in * out >= CublasLt.TUNE_MIN_MACS);
    float[] xv = new float[n * in];
    float[] wv = new float[out * in];
    float[] bv = new float[out];
    for (float[] a : new float[][] {xv, wv, bv}) {
      for (int i = 0; i < a.length; i++) {
        a[i] = (float) rnd.nextGaussian();
      }
    }
    System.setProperty("bertj.cublaslt", "true");
    try (CudaBackend ltBe = new CudaBackend();
        Tensor xc = cpu.alloc(DType.F32, n * in); Tensor wc = cpu.alloc(DType.F32, out * in);
        Tensor bc = cpu.alloc(DType.F32, out); Tensor yc = cpu.alloc(DType.F32, n * out);
        Tensor xg = ltBe.alloc(DType.F32, n * in); Tensor wg = ltBe.alloc(DType.F32, out * in);
        Tensor bg = ltBe.alloc(DType.F32, out); Tensor yg = ltBe.alloc(DType.F32, n * out);
        Tensor xlc = cpu.alloc(DType.BF16, n * in); Tensor wlc = cpu.alloc(DType.BF16, out * in);
        Tensor xlg = ltBe.alloc(DType.BF16, n * in); Tensor wlg = ltBe.alloc(DType.BF16, out * in)) {
      xc.copyFrom(xv);
      wc.copyFrom(wv);
      bc.copyFrom(bv);
      xg.copyFrom(xv);
      wg.copyFrom(wv);
      bg.copyFrom(bv);
      cpu.linear(yc, xc, wc, bc, n, in, out);
      ltBe.linear(yg, xg, wg, bg, n, in, out);
      double e = relErr(yc.toFloatArray(), yg.toFloatArray())[0];
      assertTrue(e <= 1e-5, "linear+bias fp32 (cuBLASLt): " + e);
      cpu.toBf16(xlc, xc);
      cpu.toBf16(wlc, wc);
      ltBe.toBf16(xlg, xg);
      ltBe.toBf16(wlg, wg);
      cpu.linearBf16(yc, xlc, wlc, bc, n, in, out);
      ltBe.linearBf16(yg, xlg, wlg, bg, n, in, out);
      e = relErr(yc.toFloatArray(), yg.toFloatArray())[0];
      assertTrue(e <= 1e-5, "linear+bias bf16 (cuBLASLt): " + e);
    } finally {
      System.clearProperty("bertj.cublaslt");
    }
  }

  /**
   * GEMMs tuned on first use (bertj.gemm.tune, on by default; a backend of its own): every
   * transpose, fp32 and bf16, overwriting (beta 0) and accumulating (beta 0.5), each shape run
   * twice (the first call tunes on a scratch output, the second uses the kept plan), vs the CPU.
   */
  @Test
  void tunedGemm() {
    int m = 2048, n = 1024, k = 1024; // the smallest tuned size
    assertTrue((long) m * n * k >= CublasLt.TUNE_MIN_MACS);
    System.setProperty("bertj.gemm.tune", "true");
    try (CudaBackend tuned = new CudaBackend()) {
      for (boolean bf16 : new boolean[] {false, true}) {
        for (boolean ta : new boolean[] {false, true}) {
          for (boolean tb : new boolean[] {false, true}) {
            for (float beta : new float[] {0f, 0.5f}) {
              float[] av = gaussian(m * k);
              float[] bv = gaussian(k * n);
              float[] cv = gaussian(m * n);
              try (Tensor ac = cpu.alloc(DType.F32, m * k); Tensor bc = cpu.alloc(DType.F32, k * n);
                  Tensor cc = cpu.alloc(DType.F32, m * n);
                  Tensor ag = tuned.alloc(DType.F32, m * k);
                  Tensor bg = tuned.alloc(DType.F32, k * n);
                  Tensor cg = tuned.alloc(DType.F32, m * n);
                  Tensor alc = cpu.alloc(DType.BF16, m * k);
                  Tensor blc = cpu.alloc(DType.BF16, k * n);
                  Tensor alg = tuned.alloc(DType.BF16, m * k);
                  Tensor blg = tuned.alloc(DType.BF16, k * n)) {
                ac.copyFrom(av);
                bc.copyFrom(bv);
                ag.copyFrom(av);
                bg.copyFrom(bv);
                cpu.toBf16(alc, ac);
                cpu.toBf16(blc, bc);
                tuned.toBf16(alg, ag);
                tuned.toBf16(blg, bg);
                for (int rep = 0; rep < 2; rep++) {
                  cc.copyFrom(cv);
                  cg.copyFrom(cv);
                  if (bf16) {
                    cpu.gemmBf16(ta, tb, m, n, k, 1.5f, alc, ta ? m : k, blc, tb ? k : n, beta,
                        cc, n);
                    tuned.gemmBf16(ta, tb, m, n, k, 1.5f, alg, ta ? m : k, blg, tb ? k : n, beta,
                        cg, n);
                  } else {
                    cpu.gemm(ta, tb, m, n, k, 1.5f, ac, ta ? m : k, bc, tb ? k : n, beta, cc, n);
                    tuned.gemm(ta, tb, m, n, k, 1.5f, ag, ta ? m : k, bg, tb ? k : n, beta, cg, n);
                  }
                  double e = relErr(cc.toFloatArray(), cg.toFloatArray())[0];
                  assertTrue(e <= 1e-5, "tuned gemm bf16=" + bf16 + " ta=" + ta + " tb=" + tb
                      + " beta=" + beta + " run " + rep + ": relative error " + e);
                }
              }
            }
          }
        }
      }
    } finally {
      System.clearProperty("bertj.gemm.tune");
    }
  }

  /**
   * Linear backward with the weight gradient on a side stream (bertj.cuda.overlap, on by default; a
   * backend of its own), fp32 and bf16, dx written and accumulated, vs the CPU.
   */
  @Test
  void linearBackwardOverlapped() {
    int n = 4 * 33, in = 96, out = 40;
    System.setProperty("bertj.cuda.overlap", "true");
    try (CudaBackend ov = new CudaBackend()) {
      for (boolean bf16 : new boolean[] {false, true}) {
        for (boolean acc : new boolean[] {false, true}) {
          float[] dyv = gaussian(n * out);
          float[] xv = gaussian(n * in);
          float[] wv = gaussian(out * in);
          float[] dxv = gaussian(n * in);
          float[] dwv = gaussian(out * in);
          float[] dbv = gaussian(out);
          Backend[] bes = {cpu, ov};
          float[][] res = new float[6][];
          for (int bi = 0; bi < 2; bi++) {
            Backend be = bes[bi];
            try (Tensor dy = be.alloc(DType.F32, n * out); Tensor x = be.alloc(DType.F32, n * in);
                Tensor w = be.alloc(DType.F32, out * in); Tensor dx = be.alloc(DType.F32, n * in);
                Tensor dw = be.alloc(DType.F32, out * in); Tensor db = be.alloc(DType.F32, out);
                Tensor dyl = be.alloc(DType.BF16, n * out); Tensor xl = be.alloc(DType.BF16, n * in);
                Tensor wl = be.alloc(DType.BF16, out * in)) {
              dy.copyFrom(dyv);
              x.copyFrom(xv);
              w.copyFrom(wv);
              dx.copyFrom(dxv);
              dw.copyFrom(dwv);
              db.copyFrom(dbv);
              if (bf16) {
                be.toBf16(dyl, dy);
                be.toBf16(xl, x);
                be.toBf16(wl, w);
                be.linearBackwardBf16(dx, dw, db, dy, dyl, xl, wl, n, in, out, acc);
              } else {
                be.linearBackward(dx, dw, db, dy, x, w, n, in, out, acc);
              }
              res[3 * bi] = dx.toFloatArray();
              res[3 * bi + 1] = dw.toFloatArray();
              res[3 * bi + 2] = db.toFloatArray();
            }
          }
          String what = "overlapped linear backward bf16=" + bf16 + " accumulate=" + acc;
          assertTrue(relErr(res[0], res[3])[0] <= 1e-5, what + ": dx");
          assertTrue(relErr(res[1], res[4])[0] <= 1e-5, what + ": dw");
          assertTrue(relErr(res[2], res[5])[0] <= 1e-5, what + ": dbias");
        }
      }
    } finally {
      System.clearProperty("bertj.cuda.overlap");
    }
  }

  private float[] gaussian(int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) rnd.nextGaussian();
    }
    return v;
  }

  /** bf16 rounding bit-identical; bf16 GEMM (tensor cores) vs the CPU's widened fp32 GEMM. */
  @Test
  void bf16ConversionAndGemm() {
    int m = 67, n = 45, k = 129;
    for (boolean ta : new boolean[] {false, true}) {
      for (boolean tb : new boolean[] {false, true}) {
        P a = rand(m * k);
        P b = rand(k * n);
        P c = rand(m * n);
        P al = new P(DType.BF16, m * k);
        P bl = new P(DType.BF16, k * n);
        cpu.toBf16(al.c, a.c);
        gpu.toBf16(al.g, a.g);
        cpu.toBf16(bl.c, b.c);
        gpu.toBf16(bl.g, b.g);
        P back = zeros(m * k);
        cpu.fromBf16(back.c, al.c);
        gpu.fromBf16(back.g, al.g);
        assertArrayEquals(back.c.toFloatArray(), back.g.toFloatArray(), "bf16 rounding");
        cpu.gemmBf16(ta, tb, m, n, k, 1.5f, al.c, ta ? m : k, bl.c, tb ? k : n, 0.5f, c.c, n);
        gpu.gemmBf16(ta, tb, m, n, k, 1.5f, al.g, ta ? m : k, bl.g, tb ? k : n, 0.5f, c.g, n);
        close("gemmBf16 ta=" + ta + " tb=" + tb, c, 1e-5);
      }
    }
  }

  @ParameterizedTest
  @CsvSource({"2,16,64,100,64", "1,1,37,11,8", "3,9,768,512,128"})
  void embeddings(int b, int t, int c, int v, int p) {
    int[] ids = new int[b * t];
    int[] tt = new int[b * t];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = rnd.nextInt(Math.min(v, 5)); // repeated ids exercise the scatter-add
      tt[i] = rnd.nextInt(2);
    }
    P id = ints(ids);
    P ty = ints(tt);
    P wte = rand(v, c);
    P wpe = rand(p, c);
    P wtt = rand(2, c);
    P out = zeros(b * t, c);
    cpu.embeddingsForward(out.c, id.c, ty.c, wte.c, wpe.c, wtt.c, b, t);
    gpu.embeddingsForward(out.g, id.g, ty.g, wte.g, wpe.g, wtt.g, b, t);
    close("embeddings forward", out, 1e-6);
    P dout = rand(b * t, c);
    P dwte = rand(v, c);
    P dwpe = rand(p, c);
    P dwtt = rand(2, c);
    cpu.embeddingsBackward(dwte.c, dwpe.c, dwtt.c, dout.c, id.c, ty.c, b, t);
    gpu.embeddingsBackward(dwte.g, dwpe.g, dwtt.g, dout.g, id.g, ty.g, b, t);
    close("embeddings dwte", dwte, 1e-5);
    close("embeddings dwpe", dwpe, 1e-5);
    close("embeddings dwtt", dwtt, 1e-5);
  }

  @ParameterizedTest
  @CsvSource({"1,7", "37,768", "300,1021", "4096,384"})
  void layerNormAndBiasGelu(int n, int c) {
    P x = rand(n, c);
    P res = rand(n, c);
    P gamma = rand(c);
    P beta = rand(c);
    P out = zeros(n, c);
    P mean = zeros(n);
    P rstd = zeros(n);
    P h = zeros(n, c);
    cpu.layerNormForward(out.c, mean.c, rstd.c, h.c, x.c, res.c, gamma.c, beta.c, n, c, 1e-12f);
    gpu.layerNormForward(out.g, mean.g, rstd.g, h.g, x.g, res.g, gamma.g, beta.g, n, c, 1e-12f);
    close("layernorm out", out, 1e-5);
    close("layernorm rstd", rstd, 1e-5);
    P dout = rand(n, c);
    P dh = zeros(n, c);
    P dg = rand(c);
    P db = rand(c);
    cpu.layerNormBackward(dh.c, dg.c, db.c, dout.c, h.c, mean.c, rstd.c, gamma.c, n, c);
    gpu.layerNormBackward(dh.g, dg.g, db.g, dout.g, h.g, mean.g, rstd.g, gamma.g, n, c);
    close("layernorm dh", dh, 1e-4);
    close("layernorm dgamma", dg, 1e-4);
    close("layernorm dbeta", db, 1e-4);

    P pre = zeros(n, c);
    P g = zeros(n, c);
    cpu.biasGeluForward(g.c, pre.c, x.c, gamma.c, n, c);
    gpu.biasGeluForward(g.g, pre.g, x.g, gamma.g, n, c);
    close("bias+gelu forward", g, 1e-5);
    P dpre = zeros(n, c);
    P dbias = rand(c);
    P dbias0 = copyOf(dbias);
    cpu.biasGeluBackward(dpre.c, dbias.c, dout.c, pre.c, n, c);
    gpu.biasGeluBackward(dpre.g, dbias.g, dout.g, pre.g, n, c);
    close("bias+gelu dpre", dpre, 1e-4);
    close("bias+gelu dbias", dbias, 1e-4);
    // the bf16 side outputs: toBf16 of the fp32 outputs, which stay the same
    P g2 = zeros(n, c);
    P pre2 = zeros(n, c);
    P gLow = new P(DType.BF16, (long) n * c);
    cpu.biasGeluForward(g2.c, gLow.c, pre2.c, x.c, gamma.c, n, c);
    gpu.biasGeluForward(g2.g, gLow.g, pre2.g, x.g, gamma.g, n, c);
    sameBits("bias+gelu forward with outLow: out", g2, g);
    sameBits("bias+gelu forward with outLow: pre", pre2, pre);
    lowMatches("bias+gelu outLow", gLow, g);
    P dpre2 = zeros(n, c);
    P dLow = new P(DType.BF16, (long) n * c);
    cpu.biasGeluBackward(dpre2.c, dLow.c, dbias0.c, dout.c, pre.c, n, c);
    gpu.biasGeluBackward(dpre2.g, dLow.g, dbias0.g, dout.g, pre.g, n, c);
    sameBits("bias+gelu backward with dpreLow: dpre", dpre2, dpre);
    sameBits("bias+gelu backward with dpreLow: dbias", dbias0, dbias);
    lowMatches("bias+gelu dpreLow", dLow, dpre);
    cpu.biasAdd(x.c, beta.c, n, c);
    gpu.biasAdd(x.g, beta.g, n, c);
    close("bias add", x, 1e-6);
    cpu.biasBackward(db.c, dout.c, n, c);
    gpu.biasBackward(db.g, dout.g, n, c);
    close("bias backward", db, 1e-4);
    cpu.tanhForward(g.c, x.c);
    gpu.tanhForward(g.g, x.g);
    close("tanh", g, 1e-5);
    cpu.tanhBackward(dpre.c, dout.c, g.c);
    gpu.tanhBackward(dpre.g, dout.g, g.g);
    close("tanh backward", dpre, 1e-5);
  }

  /**
   * bias_gelu_forward's optional outputs (inference): without out and/or pre, outLow has on each
   * backend the bits of the call with every output (so toBf16 of its out, and CUDA's within the
   * fp32 tolerance of the CPU's), the given outputs theirs, and x is unchanged.
   */
  @ParameterizedTest
  @CsvSource({"1,7", "37,768", "300,1021", "4096,384", "64,3072"})
  void biasGeluOptionalOutputs(int n, int c) {
    P x = rand(n, c);
    P bias = rand(c);
    int[] xc = rawBits(x.c.toFloatArray()), xg = rawBits(x.g.toFloatArray());
    P out = zeros(n, c);
    P pre = zeros(n, c);
    P low = new P(DType.BF16, (long) n * c);
    cpu.biasGeluForward(out.c, low.c, pre.c, x.c, bias.c, n, c);
    gpu.biasGeluForward(out.g, low.g, pre.g, x.g, bias.g, n, c);
    lowMatches("bias+gelu outLow", low, out);
    for (boolean withOut : new boolean[] {true, false}) {
      for (boolean withPre : new boolean[] {true, false}) {
        if (withOut && withPre) {
          continue;
        }
        String what = "bias+gelu" + (withOut ? " out" : " out=null")
            + (withPre ? " pre" : " pre=null");
        P out2 = withOut ? zeros(n, c) : null;
        P pre2 = withPre ? zeros(n, c) : null;
        P low2 = new P(DType.BF16, (long) n * c);
        fillBf16(low2.c, Float.NaN);
        fillBf16(low2.g, Float.NaN);
        cpu.biasGeluForward(withOut ? out2.c : null, low2.c, withPre ? pre2.c : null, x.c, bias.c,
            n, c);
        gpu.biasGeluForward(withOut ? out2.g : null, low2.g, withPre ? pre2.g : null, x.g, bias.g,
            n, c);
        assertArrayEquals(bf16Bits(low.c), bf16Bits(low2.c), what + ": outLow (cpu)");
        assertArrayEquals(bf16Bits(low.g), bf16Bits(low2.g), what + ": outLow (cuda)");
        unchanged(what + ": x", x, xc, xg);
        if (withOut) {
          sameBits(what + ": out", out2, out);
        }
        if (withPre) {
          sameBits(what + ": pre", pre2, pre);
        }
      }
    }
  }

  @ParameterizedTest
  @CsvSource({"1,7,0.1", "37,768,0.1", "300,1021,0.5", "4096,384,0.1", "64,3072,0.1",
      "16,768,0.0"})
  void dropoutLayerNorm(int n, int c, float p) {
    long seed = 7, offset = 123_456_789L;
    P y = rand(n, c);
    P res = rand(n, c);
    P gamma = rand(c);
    P beta = rand(c);
    P mean = zeros(n);
    P rstd = zeros(n);
    P h = zeros(n, c);
    P y2 = copyOf(y);
    cpu.dropoutLayerNormForward(y.c, mean.c, rstd.c, h.c, y.c, res.c, gamma.c, beta.c, n, c,
        1e-12f, p, seed, offset);
    gpu.dropoutLayerNormForward(y.g, mean.g, rstd.g, h.g, y.g, res.g, gamma.g, beta.g, n, c,
        1e-12f, p, seed, offset);
    assertArrayEquals(h.c.toFloatArray(), h.g.toFloatArray(), "h = dropout(y) + residual");
    close("dropout+layernorm out", y, 1e-5);
    close("dropout+layernorm rstd", rstd, 1e-5);
    // with outLow (out aliasing y again): toBf16 of out, the fp32 outputs the same
    P mean2 = zeros(n);
    P rstd2 = zeros(n);
    P h2 = zeros(n, c);
    P outLow = new P(DType.BF16, (long) n * c);
    cpu.dropoutLayerNormForward(y2.c, outLow.c, mean2.c, rstd2.c, h2.c, y2.c, res.c, gamma.c,
        beta.c, n, c, 1e-12f, p, seed, offset);
    gpu.dropoutLayerNormForward(y2.g, outLow.g, mean2.g, rstd2.g, h2.g, y2.g, res.g, gamma.g,
        beta.g, n, c, 1e-12f, p, seed, offset);
    sameBits("dropout+layernorm with outLow: out", y2, y);
    sameBits("dropout+layernorm with outLow: mean", mean2, mean);
    sameBits("dropout+layernorm with outLow: rstd", rstd2, rstd);
    sameBits("dropout+layernorm with outLow: h", h2, h);
    lowMatches("dropout+layernorm outLow", outLow, y);
    P dout = rand(n, c);
    P dh = zeros(n, c);
    P dy = zeros(n, c);
    P dg = rand(c);
    P db = rand(c);
    P dg2 = copyOf(dg);
    P db2 = copyOf(db);
    P dg3 = copyOf(dg);
    P db3 = copyOf(db);
    cpu.dropoutLayerNormBackward(dh.c, dy.c, dg.c, db.c, dout.c, h.c, mean.c, rstd.c, gamma.c, n,
        c, p, seed, offset);
    gpu.dropoutLayerNormBackward(dh.g, dy.g, dg.g, db.g, dout.g, h.g, mean.g, rstd.g, gamma.g, n,
        c, p, seed, offset);
    close("dropout+layernorm dh", dh, 1e-4);
    close("dropout+layernorm dy", dy, 1e-4);
    close("dropout+layernorm dgamma", dg, 1e-4);
    close("dropout+layernorm dbeta", db, 1e-4);
    // with dyLow: toBf16 of dy, the fp32 outputs the same
    P dh2 = zeros(n, c);
    P dy2 = zeros(n, c);
    P dyLow = new P(DType.BF16, (long) n * c);
    cpu.dropoutLayerNormBackward(dh2.c, dy2.c, dyLow.c, dg2.c, db2.c, dout.c, h.c, mean.c, rstd.c,
        gamma.c, n, c, p, seed, offset);
    gpu.dropoutLayerNormBackward(dh2.g, dy2.g, dyLow.g, dg2.g, db2.g, dout.g, h.g, mean.g, rstd.g,
        gamma.g, n, c, p, seed, offset);
    sameBits("dropout+layernorm with dyLow: dh", dh2, dh);
    sameBits("dropout+layernorm with dyLow: dy", dy2, dy);
    sameBits("dropout+layernorm with dyLow: dgamma", dg2, dg);
    sameBits("dropout+layernorm with dyLow: dbeta", db2, db);
    lowMatches("dropout+layernorm dyLow", dyLow, dy);
    // with dbiasY from a nonzero start: the column sums of dy accumulated, on each backend close
    // to (CPU: bit for bit) its biasBackward of its dy; the other outputs the same bits
    P dh3 = zeros(n, c);
    P dy3 = zeros(n, c);
    P dby = rand(c);
    P ref = copyOf(dby);
    cpu.dropoutLayerNormBackward(dh3.c, dy3.c, null, dg3.c, db3.c, dby.c, dout.c, h.c, mean.c,
        rstd.c, gamma.c, n, c, p, seed, offset);
    gpu.dropoutLayerNormBackward(dh3.g, dy3.g, null, dg3.g, db3.g, dby.g, dout.g, h.g, mean.g,
        rstd.g, gamma.g, n, c, p, seed, offset);
    sameBits("dropout+layernorm with dbiasY: dh", dh3, dh);
    sameBits("dropout+layernorm with dbiasY: dy", dy3, dy);
    sameBits("dropout+layernorm with dbiasY: dgamma", dg3, dg);
    sameBits("dropout+layernorm with dbiasY: dbeta", db3, db);
    close("dropout+layernorm dbiasY", dby, 1e-4);
    cpu.biasBackward(ref.c, dy.c, n, c);
    gpu.biasBackward(ref.g, dy.g, n, c);
    assertArrayEquals(ref.c.toFloatArray(), dby.c.toFloatArray(), "cpu dbiasY = biasBackward");
    double e = relErr(ref.g.toFloatArray(), dby.g.toFloatArray())[0];
    assertTrue(e <= 1e-4, "cuda dbiasY vs its biasBackward: relative error " + e);
    float[] gy = dy.g.toFloatArray();
    float[] cy = dy.c.toFloatArray();
    for (int i = 0; i < gy.length; i++) {
      if ((gy[i] == 0f) != (cy[i] == 0f)) {
        throw new AssertionError("dropout masks differ at element " + i);
      }
    }
  }

  @Test
  void dropoutMasksIdentical() {
    int n = 100_003;
    P u = zeros(n);
    cpu.philoxUniform(u.c, 42, 12345);
    gpu.philoxUniform(u.g, 42, 12345);
    assertArrayEquals(u.c.toFloatArray(), u.g.toFloatArray(), "philox uniforms differ");
    P x = rand(n);
    P out = zeros(n);
    cpu.dropoutForward(out.c, x.c, 0.1f, 7, 99);
    gpu.dropoutForward(out.g, x.g, 0.1f, 7, 99);
    assertArrayEquals(out.c.toFloatArray(), out.g.toFloatArray(), "dropout outputs differ");
    cpu.dropoutBackward(out.c, x.c, 0.1f, 7, 99);
    gpu.dropoutBackward(out.g, x.g, 0.1f, 7, 99);
    assertArrayEquals(out.c.toFloatArray(), out.g.toFloatArray(), "dropout backward differs");
  }

  /**
   * gather_rows: bit-identical (a copy), -1 rows zero, float4 and scalar paths (C % 4, an
   * unaligned view); an index past in's rows: the CPU throws, CUDA does not read it and writes
   * NaN into that row.
   */
  @ParameterizedTest
  @CsvSource({"1,1,1,0", "9,8,4,0", "9,8,4,1", "33,36,40,1", "300,768,512,0", "17,13,20,0"})
  void gatherRows(int m, int c, int nIn, int shift) {
    int[] idx = new int[m];
    for (int i = 0; i < m; i++) {
      idx[i] = rnd.nextInt(nIn + 1) - 1;
    }
    idx[0] = -1;
    P in = rand(nIn * c + shift);
    P out = rand(m * c + shift);
    P ix = ints(idx);
    Tensor ic = in.c.view(shift, nIn, c), ig = in.g.view(shift, nIn, c);
    Tensor oc = out.c.view(shift, m, c), og = out.g.view(shift, m, c);
    cpu.gatherRows(oc, ic, ix.c, m, c);
    gpu.gatherRows(og, ig, ix.g, m, c);
    float[] fc = oc.toFloatArray();
    assertArrayEquals(rawBits(fc), rawBits(og.toFloatArray()), "gather cuda vs cpu");
    for (int i = 0; i < c; i++) {
      assertEquals(0, Float.floatToRawIntBits(fc[i]), "row of idx -1 is +0");
    }
    int[] bad = idx.clone();
    bad[m - 1] = nIn;
    P bx = ints(bad);
    assertThrows(NativeException.class, () -> cpu.gatherRows(oc, ic, bx.c, m, c));
    gpu.gatherRows(og, ig, bx.g, m, c);
    float[] g = og.toFloatArray();
    for (int i = 0; i < m * c; i++) {
      int row = i / c;
      if (row == m - 1) {
        assertTrue(Float.isNaN(g[i]), "out-of-range row is NaN on CUDA");
      } else {
        assertEquals(Float.floatToRawIntBits(fc[i]), Float.floatToRawIntBits(g[i]),
            "other rows unchanged by a bad index");
      }
    }
  }

  /** Right padding of decreasing lengths; with 3+ rows, row 1 is fully padded. */
  private static int[] paddingMask(int b, int t) {
    int[] mask = new int[b * t];
    for (int i = 0; i < b; i++) {
      int len = i == 1 && b > 2 ? 0 : Math.max(1, t - i * (t / 3 + 1));
      for (int j = 0; j < t; j++) {
        mask[i * t + j] = j < len ? 1 : 0;
      }
    }
    return mask;
  }

  @ParameterizedTest
  @CsvSource({"2,16,4,64,0.0", "1,1,2,32,0.0", "3,33,3,128,0.0", "4,128,12,64,0.0",
      "2,70,4,64,0.1", "2,512,2,64,0.0"})
  void attention(int b, int t, int nh, int d, float p) {
    int c = nh * d;
    P m = ints(paddingMask(b, t));
    P qkv = rand(b * t, 3 * c);
    P out = zeros(b * t, c);
    P lse = zeros(b * nh * t);
    cpu.attentionForward(out.c, lse.c, qkv.c, m.c, b, t, nh, d, p, 5, 77);
    gpu.attentionForward(out.g, lse.g, qkv.g, m.g, b, t, nh, d, p, 5, 77);
    close("attention out", out, 1e-5);
    close("attention lse", lse, 1e-5);
    P dout = rand(b * t, c);
    P dqkv = zeros(b * t, 3 * c);
    cpu.attentionBackward(dqkv.c, dout.c, qkv.c, out.c, lse.c, m.c, b, t, nh, d, p, 5, 77);
    gpu.attentionBackward(dqkv.g, dout.g, qkv.g, out.g, lse.g, m.g, b, t, nh, d, p, 5, 77);
    close("attention dqkv", dqkv, 1e-4);
  }

  /** attention_tc (bf16 tensor cores) vs its CPU reference: same bf16 rounding points. */
  @ParameterizedTest
  @CsvSource({"2,16,4,64,0.0", "1,1,2,32,0.1", "3,100,2,64,0.1", "4,128,12,64,0.1",
      "2,128,4,32,0.0"})
  void attentionTc(int b, int t, int nh, int d, float p) {
    int c = nh * d;
    P m = ints(paddingMask(b, t));
    P qkv = rand(b * t, 3 * c);
    P out = zeros(b * t, c);
    P lse = zeros(b * nh * t);
    assertTrue(cpu.attentionForwardLowp(out.c, lse.c, qkv.c, m.c, b, t, nh, d, p, 5, 77));
    assertTrue(gpu.attentionForwardLowp(out.g, lse.g, qkv.g, m.g, b, t, nh, d, p, 5, 77));
    close("attention_tc out", out, 1e-3);
    close("attention_tc lse", lse, 1e-3);
    P dout = rand(b * t, c);
    P dqkv = zeros(b * t, 3 * c);
    assertTrue(cpu.attentionBackwardLowp(dqkv.c, dout.c, qkv.c, out.c, lse.c, m.c, b, t, nh, d,
        p, 5, 77));
    assertTrue(gpu.attentionBackwardLowp(dqkv.g, dout.g, qkv.g, out.g, lse.g, m.g, b, t, nh, d,
        p, 5, 77));
    close("attention_tc dqkv", dqkv, 2e-3);

    // the same calls with the bf16 side outputs: fp32 results bit for bit as above
    int[] oc = rawBits(out.c.toFloatArray()), og = rawBits(out.g.toFloatArray());
    int[] lc = rawBits(lse.c.toFloatArray()), lg = rawBits(lse.g.toFloatArray());
    P outLow = new P(DType.BF16, b * t, c);
    assertTrue(cpu.attentionForwardLowp(out.c, outLow.c, lse.c, qkv.c, m.c, b, t, nh, d, p, 5,
        77));
    assertTrue(gpu.attentionForwardLowp(out.g, outLow.g, lse.g, qkv.g, m.g, b, t, nh, d, p, 5,
        77));
    unchanged("attention_tc out", out, oc, og);
    unchanged("attention_tc lse", lse, lc, lg);
    lowMatches("attention_tc outLow", outLow, out);
    // without out (inference): the same outLow and lse on each backend
    P outLow2 = new P(DType.BF16, b * t, c);
    P lse2 = zeros(b * nh * t);
    fillBf16(outLow2.c, Float.NaN);
    fillBf16(outLow2.g, Float.NaN);
    cpu.fill(lse2.c, Float.NaN);
    gpu.fill(lse2.g, Float.NaN);
    assertTrue(cpu.attentionForwardLowp(null, outLow2.c, lse2.c, qkv.c, m.c, b, t, nh, d, p, 5,
        77));
    assertTrue(gpu.attentionForwardLowp(null, outLow2.g, lse2.g, qkv.g, m.g, b, t, nh, d, p, 5,
        77));
    assertArrayEquals(bf16Bits(outLow.c), bf16Bits(outLow2.c), "attention_tc out=null (cpu)");
    assertArrayEquals(bf16Bits(outLow.g), bf16Bits(outLow2.g), "attention_tc out=null (cuda)");
    unchanged("attention_tc lse (out=null)", lse2, lc, lg);
    int[] dc = rawBits(dqkv.c.toFloatArray()), dg = rawBits(dqkv.g.toFloatArray());
    P dqkvLow = new P(DType.BF16, b * t, 3 * c);
    assertTrue(cpu.attentionBackwardLowp(dqkv.c, dqkvLow.c, dout.c, qkv.c, out.c, lse.c, m.c, b,
        t, nh, d, p, 5, 77));
    assertTrue(gpu.attentionBackwardLowp(dqkv.g, dqkvLow.g, dout.g, qkv.g, out.g, lse.g, m.g, b,
        t, nh, d, p, 5, 77));
    unchanged("attention_tc dqkv", dqkv, dc, dg);
    lowMatches("attention_tc dqkvLow", dqkvLow, dqkv);
  }

  /** adamw's bf16 side output, 8-byte aligned (uint2 stores) and not (scalar stores). */
  @ParameterizedTest
  @CsvSource({"0", "1", "2"})
  void adamwBf16SideOutput(int lowOffset) {
    int n = 1_000_003;
    P pr = rand(n);
    P gr = rand(n);
    P p2 = copyOf(pr);
    P mm = zeros(n);
    P vv = zeros(n);
    P m2 = zeros(n);
    P v2 = zeros(n);
    P low = new P(DType.BF16, n + lowOffset);
    Tensor lc = low.c.view(lowOffset, n);
    Tensor lg = low.g.view(lowOffset, n);
    for (int step = 1; step <= 3; step++) {
      cpu.adamw(pr.c, gr.c, mm.c, vv.c, 1000, n - 1000, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step, null);
      gpu.adamw(pr.g, gr.g, mm.g, vv.g, 1000, n - 1000, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step, null);
      cpu.adamw(p2.c, lc, gr.c, m2.c, v2.c, 1000, n - 1000, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step,
          null);
      gpu.adamw(p2.g, lg, gr.g, m2.g, v2.g, 1000, n - 1000, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step,
          null);
    }
    unchanged("adamw p", p2, rawBits(pr.c.toFloatArray()), rawBits(pr.g.toFloatArray()));
    unchanged("adamw m", m2, rawBits(mm.c.toFloatArray()), rawBits(mm.g.toFloatArray()));
    unchanged("adamw v", v2, rawBits(vv.c.toFloatArray()), rawBits(vv.g.toFloatArray()));
    assertArrayEquals(toBf16Bits(pr.c), bf16Bits(lc), "adamw pLow (cpu) = toBf16");
    assertArrayEquals(toBf16Bits(pr.g), bf16Bits(lg), "adamw pLow (cuda) = toBf16");
    double[] e = relErr(widen(lc), widen(lg));
    assertTrue(e[0] <= 1e-4, "adamw pLow cuda vs cpu: relative error " + e[0]);
    // a CPU tensor is no bf16 output for the CUDA op
    assertThrows(IllegalArgumentException.class, () -> gpu.adamw(p2.g, lc, gr.g, m2.g, v2.g, 0,
        n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 4, null));
  }

  @Test
  void lossesAndOptimizer() {
    int b = 37, l = 5;
    int[] labels = new int[b];
    for (int i = 0; i < b; i++) {
      labels[i] = i == 3 ? -100 : rnd.nextInt(l);
    }
    P lab = ints(labels);
    P logits = rand(b, l);
    P losses = zeros(b);
    P dl = zeros(b, l);
    cpu.crossEntropy(losses.c, dl.c, logits.c, lab.c, b, l, 1f / b);
    gpu.crossEntropy(losses.g, dl.g, logits.g, lab.g, b, l, 1f / b);
    close("cross-entropy losses", losses, 1e-5);
    close("cross-entropy dlogits", dl, 1e-5);
    P targets = rand(b, l);
    P el = zeros(b, l);
    cpu.bceWithLogits(el.c, dl.c, logits.c, targets.c, 0.5f);
    gpu.bceWithLogits(el.g, dl.g, logits.g, targets.g, 0.5f);
    close("bce losses", el, 1e-5);
    close("bce dlogits", dl, 1e-5);
    cpu.mse(el.c, dl.c, logits.c, targets.c, 0.5f);
    gpu.mse(el.g, dl.g, logits.g, targets.g, 0.5f);
    close("mse losses", el, 1e-5);
    close("mse dpred", dl, 1e-5);

    int n = 1_000_003;
    P pr = rand(n);
    P gr = rand(n);
    P mm = zeros(n);
    P vv = zeros(n);
    P ss = zeros(1);
    P sc = zeros(1);
    cpu.sumSquares(ss.c, gr.c);
    gpu.sumSquares(ss.g, gr.g);
    close("sum of squares", ss, 1e-5);
    cpu.clipScale(sc.c, ss.c, 1f);
    gpu.clipScale(sc.g, ss.g, 1f);
    close("clip scale", sc, 1e-5);
    for (int step = 1; step <= 3; step++) {
      cpu.adamw(pr.c, gr.c, mm.c, vv.c, 1000, n - 1000, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step, sc.c);
      gpu.adamw(pr.g, gr.g, mm.g, vv.g, 1000, n - 1000, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step, sc.g);
    }
    close("adamw params", pr, 1e-6);
    close("adamw m", mm, 1e-5);
    close("adamw v", vv, 1e-5);
  }

  /**
   * {@link Backend#useStepScalars} on CUDA (the kernels read the device copy): every op that takes
   * a seed, lr or step gives the bits of its value path ({@link StepScalarsChecks}), on the
   * float4 and scalar paths and the attention kernels of each shape class (T <= 128 at D = 64
   * and 32, T > 128, D = 16; the bf16 tensor-core pair).
   */
  @ParameterizedTest
  @ValueSource(ints = {1027, 100_003})
  void stepScalarsDropout(int n) {
    StepScalarsChecks.dropout(gpu, n);
  }

  @ParameterizedTest
  @CsvSource({"9,64", "37,768", "5,13", "3,6000"})
  void stepScalarsDropoutLayerNorm(int n, int c) {
    StepScalarsChecks.dropoutLayerNorm(gpu, n, c);
  }

  @ParameterizedTest
  @CsvSource({"false,2,32,2,64,0", "false,1,19,2,32,1", "false,2,20,1,16,0",
      "false,1,160,2,64,0", "false,2,33,2,128,0", "true,2,40,2,64,0", "true,1,19,2,32,2"})
  void stepScalarsAttention(boolean lowp, int b, int t, int nh, int d, long offset) {
    StepScalarsChecks.attention(gpu, lowp, b, t, nh, d, offset);
  }

  @ParameterizedTest
  @ValueSource(ints = {1031, 1_000_003})
  void stepScalarsAdamw(int n) {
    StepScalarsChecks.adamw(gpu, n);
  }

  @Test
  void cachingAllocatorReusesBlocks() {
    try (Tensor a = gpu.alloc(DType.F32, 1000)) {
      a.checkOpen();
    }
    long before = gpu.mallocCalls();
    for (int i = 0; i < 10; i++) {
      try (Tensor a = gpu.alloc(DType.F32, 1000); Tensor b = gpu.alloc(DType.F32, 999)) {
        gpu.fill(a, 1f);
        gpu.fill(b, 2f);
      }
    }
    assertTrue(gpu.mallocCalls() <= before + 1, "cudaMalloc called in a steady loop");
  }
}
