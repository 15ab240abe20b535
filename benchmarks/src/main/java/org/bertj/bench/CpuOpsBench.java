package org.bertj.bench;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.bertj.backend.CpuBackend;
import org.bertj.backend.DType;
import org.bertj.backend.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The CPU kernels one by one at BERT-base training shapes: batch 32, seq 128 (N = 4096 tokens),
 * hidden 768, 12 heads of 64, FFN 3072, vocabulary 30522, 512 positions, 2 labels; the optimizer
 * ops over the 110M parameters of BERT-base; and the QKV projection GEMM for scale.
 *
 * <p>Run: {@code java -jar benchmarks/target/benchmarks.jar CpuOpsBench -f 1 -wi 2 -i 3}. Each op
 * group has its own state, so a benchmark only allocates what it touches (the AdamW state is 1.8
 * GB). Per op, the Javadoc gives the minimum memory traffic (fp32, each buffer read or written
 * once) and the FLOPs, so that ms/op can be read as GB/s or GFLOP/s: everything but attention and
 * the GEMM is bound by memory bandwidth.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class CpuOpsBench {
  static final int B = 32, T = 128, N = B * T, C = 768, NH = 12, D = 64, FFN = 3072;
  static final int VOCAB = 30522, POS = 512, TYPES = 2, LABELS = 2;

  /** The backend and a random source; closes what the subclass allocated. */
  public abstract static class Base {
    final CpuBackend be = new CpuBackend();
    final Random rnd = new Random(42);
    private final java.util.ArrayList<Tensor> owned = new java.util.ArrayList<>();

    Tensor zeros(long... shape) {
      Tensor t = be.alloc(DType.F32, shape);
      owned.add(t);
      return t;
    }

    /** Normal(0, scale) values, filled in 1M-element chunks to keep the heap small. */
    Tensor randn(double scale, long... shape) {
      Tensor t = zeros(shape);
      long n = t.numel();
      int chunk = 1 << 20;
      for (long off = 0; off < n; off += chunk) {
        int len = (int) Math.min(chunk, n - off);
        float[] v = new float[len];
        for (int i = 0; i < len; i++) {
          v[i] = (float) (rnd.nextGaussian() * scale);
        }
        try (Tensor view = t.view(off, len)) {
          view.copyFrom(v);
        }
      }
      return t;
    }

    Tensor ints(int bound, int fill, long n) {
      Tensor t = be.alloc(DType.I32, n);
      owned.add(t);
      int[] v = new int[(int) n];
      for (int i = 0; i < v.length; i++) {
        v[i] = bound > 0 ? rnd.nextInt(bound) : fill;
      }
      return t.copyFrom(v);
    }

    @TearDown(Level.Trial)
    public void close() {
      for (int i = owned.size() - 1; i >= 0; i--) {
        owned.get(i).close();
      }
      be.close();
    }
  }

  @State(Scope.Benchmark)
  public static class Embeddings extends Base {
    Tensor ids, tt, wte, wpe, wtt, out, dwte, dwpe, dwtt;

    @Setup(Level.Trial)
    public void setup() {
      ids = ints(VOCAB, 0, N);
      tt = ints(TYPES, 0, N);
      wte = randn(0.02, VOCAB, C);
      wpe = randn(0.02, POS, C);
      wtt = randn(0.02, TYPES, C);
      out = randn(1, N, C);
      dwte = zeros(VOCAB, C);
      dwpe = zeros(POS, C);
      dwtt = zeros(TYPES, C);
    }
  }

  /** Gathers 3 rows per token, writes (N, C): 2 * 12.6 MB + ids; 2 adds per element. */
  @Benchmark
  public void embeddingsForward(Embeddings s) {
    s.be.embeddingsForward(s.out, s.ids, s.tt, s.wte, s.wpe, s.wtt, B, T);
  }

  /** Reads dout (N, C) 12.6 MB, read-modify-writes 3 rows per token; 3 adds per element. */
  @Benchmark
  public void embeddingsBackward(Embeddings s) {
    s.be.embeddingsBackward(s.dwte, s.dwpe, s.dwtt, s.out, s.ids, s.tt, B, T);
  }

  @State(Scope.Benchmark)
  public static class LayerNorm extends Base {
    Tensor x, res, out, mean, rstd, h, gamma, beta, dh, dgamma, dbeta, dout;

    @Setup(Level.Trial)
    public void setup() {
      x = randn(1, N, C);
      res = randn(1, N, C);
      out = zeros(N, C);
      mean = zeros(N);
      rstd = zeros(N);
      h = zeros(N, C);
      gamma = randn(1, C);
      beta = randn(1, C);
      dh = zeros(N, C);
      dgamma = zeros(C);
      dbeta = zeros(C);
      dout = randn(1, N, C);
      be.layerNormForward(out, mean, rstd, h, x, res, gamma, beta, N, C, 1e-12f);
    }
  }

  /** LN(x + residual), saving h: reads 2, writes 2 (N, C) = 50 MB; ~10 FLOP per element. */
  @Benchmark
  public void layerNormForward(LayerNorm s) {
    s.be.layerNormForward(s.out, s.mean, s.rstd, s.h, s.x, s.res, s.gamma, s.beta, N, C, 1e-12f);
  }

  /** Reads dout, h; writes dh: 38 MB (the dgamma/dbeta pass reads dout, h again); ~15 FLOP/el. */
  @Benchmark
  public void layerNormBackward(LayerNorm s) {
    s.be.layerNormBackward(s.dh, s.dgamma, s.dbeta, s.dout, s.h, s.mean, s.rstd, s.gamma, N, C);
  }

  /**
   * BertOutput's dropout (p = 0.1) fused into LN(dropout(y) + residual): reads 2, writes 2 (N, C),
   * one Philox-4x32-10 per element (dropoutForward + layerNormForward, unfused).
   */
  @Benchmark
  public void dropoutLayerNormForward(LayerNorm s) {
    s.be.dropoutLayerNormForward(s.out, s.mean, s.rstd, s.h, s.x, s.res, s.gamma, s.beta, N, C,
        1e-12f, 0.1f, 7L, 0L);
  }

  /** Its backward: dh and dy = dh * mask / (1 - p) in one op (layerNormBackward + dropout). */
  @Benchmark
  public void dropoutLayerNormBackward(LayerNorm s) {
    s.be.dropoutLayerNormBackward(s.dh, s.out, s.dgamma, s.dbeta, s.dout, s.h, s.mean, s.rstd,
        s.gamma, N, C, 0.1f, 7L, 0L);
  }

  @State(Scope.Benchmark)
  public static class Gelu extends Base {
    Tensor x, bias, pre, out, dout, dpre, dbias;

    @Setup(Level.Trial)
    public void setup() {
      x = randn(1, N, FFN);
      bias = randn(0.1, FFN);
      pre = zeros(N, FFN);
      out = zeros(N, FFN);
      dout = randn(1, N, FFN);
      dpre = zeros(N, FFN);
      dbias = zeros(FFN);
      be.biasGeluForward(out, pre, x, bias, N, FFN);
    }
  }

  /** (N, 3072): reads x, writes pre and out = 151 MB; one erf per element. */
  @Benchmark
  public void biasGeluForward(Gelu s) {
    s.be.biasGeluForward(s.out, s.pre, s.x, s.bias, N, FFN);
  }

  /** Reads dout, pre, writes dpre, re-reads dpre for dbias = 201 MB; erf + exp per element. */
  @Benchmark
  public void biasGeluBackward(Gelu s) {
    s.be.biasGeluBackward(s.dpre, s.dbias, s.dout, s.pre, N, FFN);
  }

  @State(Scope.Benchmark)
  public static class Attention extends Base {
    /** Attention-probability dropout (BERT's attention_probs_dropout_prob is 0.1). */
    @Param({"0.1"})
    public float p;

    Tensor qkv, mask, out, lse, dout, dqkv;

    @Setup(Level.Trial)
    public void setup() {
      qkv = randn(1, N, 3 * C);
      mask = ints(0, 1, N);
      out = zeros(N, C);
      lse = zeros(B, NH, T);
      dout = randn(1, N, C);
      dqkv = zeros(N, 3 * C);
      be.attentionForward(out, lse, qkv, mask, B, T, NH, D, p, 1L, 0L);
    }
  }

  /** 4 B NH T^2 D = 1.61 GFLOP (QK^T and PV) + B NH T^2 = 6.3M exp / Philox draws. */
  @Benchmark
  public void attentionForward(Attention s) {
    s.be.attentionForward(s.out, s.lse, s.qkv, s.mask, B, T, NH, D, s.p, 1L, 0L);
  }

  /** 8 B NH T^2 D = 3.2 GFLOP (QK^T, dO V^T, dS K, dS^T Q, P^T dO). */
  @Benchmark
  public void attentionBackward(Attention s) {
    s.be.attentionBackward(s.dqkv, s.dout, s.qkv, s.out, s.lse, s.mask, B, T, NH, D, s.p, 1L, 0L);
  }

  @State(Scope.Benchmark)
  public static class Dropout extends Base {
    Tensor x, out;

    @Setup(Level.Trial)
    public void setup() {
      x = randn(1, N, C);
      out = zeros(N, C);
    }
  }

  /** (N, C) hidden dropout, p = 0.1: 25 MB; one Philox-4x32-10 (10 rounds) per element. */
  @Benchmark
  public void dropoutForward(Dropout s) {
    s.be.dropoutForward(s.out, s.x, 0.1f, 7L, 0L);
  }

  @State(Scope.Benchmark)
  public static class Loss extends Base {
    Tensor logits, labels, losses, dlogits;

    @Setup(Level.Trial)
    public void setup() {
      logits = randn(1, B, LABELS);
      labels = ints(LABELS, 0, B);
      losses = zeros(B);
      dlogits = zeros(B, LABELS);
    }
  }

  /** (32, 2): a few hundred bytes; measures the call overhead (JNI + argument checks). */
  @Benchmark
  public void crossEntropy(Loss s) {
    s.be.crossEntropy(s.losses, s.dlogits, s.logits, s.labels, B, LABELS, 1f / B);
  }

  @State(Scope.Benchmark)
  public static class Optimizer extends Base {
    /** Parameters: BERT-base with the classification head is about 110M. */
    @Param({"110000000"})
    public long params;

    Tensor p, g, m, v, normSq, scale;

    @Setup(Level.Trial)
    public void setup() {
      p = randn(0.02, params);
      g = randn(1e-3, params);
      m = zeros(params);
      v = zeros(params);
      normSq = zeros(1);
      scale = zeros(1);
      be.fill(scale, 1f);
    }
  }

  /** Reads p, g, m, v and writes p, m, v: 7 * 4 * 110M = 3.1 GB; ~15 FLOP per parameter. */
  @Benchmark
  public void adamw(Optimizer s) {
    s.be.adamw(s.p, s.g, s.m, s.v, 0, s.params, 1e-5f, 0.9f, 0.999f, 1e-8f, 0.01f, 10, s.scale);
  }

  /** Reads g: 440 MB; 2 FLOP per element (double accumulation). */
  @Benchmark
  public void sumSquares(Optimizer s) {
    s.be.sumSquares(s.normSq, s.g);
  }

  @State(Scope.Benchmark)
  public static class Gemm extends Base {
    Tensor x, w, y;

    @Setup(Level.Trial)
    public void setup() {
      x = randn(1, N, C);
      w = randn(0.02, 3 * C, C);
      y = zeros(N, 3 * C);
    }
  }

  /** QKV projection y (4096, 2304) = x (4096, 768) w^T: 2 * 4096 * 768 * 2304 = 14.5 GFLOP. */
  @Benchmark
  public void gemmQkv(Gemm s) {
    s.be.gemm(false, true, N, 3 * C, C, 1f, s.x, C, s.w, C, 0f, s.y, 3 * C);
  }
}
