package org.bertj.nativ;

import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP binding of {@code libbertj_cpu.so} ({@code native/include/bertj.h}, prefix
 * {@code bj_cpu_}). Pointers travel as raw addresses ({@code long}); {@code org.bertj.backend}
 * checks every argument before calling here. {@link BertjCuda} mirrors this class for
 * {@code bj_cuda_}: keep the two in step with the header.
 */
@Platform(value = "linux-x86_64", include = "bertj.h", link = "bertj_cpu")
public final class BertjCpu {
  static {
    Loader.load();
  }

  private BertjCpu() {}

  public static native @Cast("const char*") BytePointer bj_cpu_last_error();

  public static native int bj_cpu_num_threads();

  public static native int bj_cpu_fill(@Cast("float*") long x, @Cast("int64_t") long n, float value, @Cast("void*") long stream);

  public static native int bj_cpu_axpy(@Cast("float*") long y, @Cast("const float*") long x, @Cast("int64_t") long n, float alpha, @Cast("void*") long stream);

  public static native int bj_cpu_scale_by(@Cast("float*") long x, @Cast("int64_t") long n, @Cast("const float*") long scale, @Cast("void*") long stream);

  public static native int bj_cpu_to_bf16(@Cast("uint16_t*") long out, @Cast("const float*") long x, @Cast("int64_t") long n, @Cast("void*") long stream);

  public static native int bj_cpu_from_bf16(@Cast("float*") long out, @Cast("const uint16_t*") long x, @Cast("int64_t") long n, @Cast("void*") long stream);

  public static native int bj_cpu_gather_rows(@Cast("float*") long out, @Cast("const float*") long in, @Cast("const int32_t*") long idx,
      int M, int C, int n_in, @Cast("void*") long stream);

  public static native int bj_cpu_embeddings_forward(@Cast("float*") long out, @Cast("const int32_t*") long ids, @Cast("const int32_t*") long tt,
      @Cast("const float*") long wte, @Cast("const float*") long wpe, @Cast("const float*") long wtt, int B, int T, int C, int V, int P, int TV, @Cast("void*") long stream);

  public static native int bj_cpu_embeddings_backward(@Cast("float*") long dwte, @Cast("float*") long dwpe, @Cast("float*") long dwtt, @Cast("const float*") long dout,
      @Cast("const int32_t*") long ids, @Cast("const int32_t*") long tt, int B, int T, int C, int V, int P, int TV, @Cast("void*") long stream);

  public static native int bj_cpu_layernorm_forward(@Cast("float*") long out, @Cast("float*") long mean, @Cast("float*") long rstd, @Cast("float*") long hsave,
      @Cast("const float*") long x, @Cast("const float*") long residual, @Cast("const float*") long gamma, @Cast("const float*") long beta, int N, int C, float eps, @Cast("void*") long stream);

  public static native int bj_cpu_layernorm_backward(@Cast("float*") long dh, @Cast("float*") long dgamma, @Cast("float*") long dbeta, @Cast("const float*") long dout,
      @Cast("const float*") long h, @Cast("const float*") long mean, @Cast("const float*") long rstd, @Cast("const float*") long gamma, int N, int C, @Cast("void*") long stream);

  public static native int bj_cpu_dropout_layernorm_forward(@Cast("float*") long out, @Cast("uint16_t*") long out_low, @Cast("float*") long mean, @Cast("float*") long rstd, @Cast("float*") long hsave,
      @Cast("const float*") long y, @Cast("const float*") long residual, @Cast("const float*") long gamma, @Cast("const float*") long beta, int N, int C, float eps,
      float p, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset, @Cast("const bj_step_scalars*") long sc, @Cast("void*") long stream);

  public static native int bj_cpu_dropout_layernorm_backward(@Cast("float*") long dh, @Cast("float*") long dy, @Cast("uint16_t*") long dy_low, @Cast("float*") long dgamma, @Cast("float*") long dbeta, @Cast("float*") long dbias_y,
      @Cast("const float*") long dout, @Cast("const float*") long h, @Cast("const float*") long mean, @Cast("const float*") long rstd, @Cast("const float*") long gamma,
      int N, int C, float p, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset, @Cast("const bj_step_scalars*") long sc, @Cast("void*") long stream);

  public static native int bj_cpu_bias_add(@Cast("float*") long x, @Cast("const float*") long bias, int N, int C, @Cast("void*") long stream);

  public static native int bj_cpu_bias_backward(@Cast("float*") long dbias, @Cast("const float*") long dout, int N, int C, @Cast("void*") long stream);

  public static native int bj_cpu_bias_gelu_forward(@Cast("float*") long out, @Cast("uint16_t*") long out_low, @Cast("float*") long pre, @Cast("const float*") long x, @Cast("const float*") long bias, int N, int C, @Cast("void*") long stream);

  public static native int bj_cpu_bias_gelu_backward(@Cast("float*") long dpre, @Cast("uint16_t*") long dpre_low, @Cast("float*") long dbias, @Cast("const float*") long dout, @Cast("const float*") long pre, int N, int C, @Cast("void*") long stream);

  public static native int bj_cpu_tanh_forward(@Cast("float*") long out, @Cast("const float*") long x, @Cast("int64_t") long n, @Cast("void*") long stream);

  public static native int bj_cpu_tanh_backward(@Cast("float*") long dx, @Cast("const float*") long dout, @Cast("const float*") long out, @Cast("int64_t") long n, @Cast("void*") long stream);

  public static native int bj_cpu_dropout_forward(@Cast("float*") long out, @Cast("const float*") long x, @Cast("int64_t") long n, float p, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset, @Cast("const bj_step_scalars*") long sc, @Cast("void*") long stream);

  public static native int bj_cpu_dropout_backward(@Cast("float*") long dx, @Cast("const float*") long dout, @Cast("int64_t") long n, float p, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset, @Cast("const bj_step_scalars*") long sc, @Cast("void*") long stream);

  public static native int bj_cpu_philox_uniform(@Cast("float*") long u, @Cast("int64_t") long n, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset, @Cast("const bj_step_scalars*") long sc, @Cast("void*") long stream);

  public static native int bj_cpu_attention_forward(@Cast("float*") long out, @Cast("float*") long lse, @Cast("const float*") long qkv, @Cast("const int32_t*") long mask,
      int B, int T, int NH, int D, float p, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset, @Cast("const bj_step_scalars*") long sc, @Cast("void*") long stream);

  public static native int bj_cpu_attention_backward(@Cast("float*") long dqkv, @Cast("const float*") long dout, @Cast("const float*") long qkv, @Cast("const float*") long out,
      @Cast("const float*") long lse, @Cast("const int32_t*") long mask, int B, int T, int NH, int D, float p, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset, @Cast("const bj_step_scalars*") long sc, @Cast("void*") long stream);

  public static native int bj_cpu_attention_tc_forward(@Cast("float*") long out, @Cast("uint16_t*") long outLow, @Cast("float*") long lse, @Cast("const float*") long qkv,
      @Cast("const int32_t*") long mask, int B, int T, int NH, int D, float p, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset, @Cast("const bj_step_scalars*") long sc, @Cast("void*") long stream);

  public static native int bj_cpu_attention_tc_backward(@Cast("float*") long dqkv, @Cast("uint16_t*") long dqkvLow, @Cast("const float*") long dout, @Cast("const float*") long qkv,
      @Cast("const float*") long out, @Cast("const float*") long lse, @Cast("const int32_t*") long mask, int B, int T, int NH, int D, float p, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset, @Cast("const bj_step_scalars*") long sc, @Cast("void*") long stream);

  public static native int bj_cpu_cross_entropy(@Cast("float*") long losses, @Cast("float*") long dlogits, @Cast("const float*") long logits, @Cast("const int32_t*") long labels,
      int B, int L, float gradScale, @Cast("void*") long stream);

  public static native int bj_cpu_bce_with_logits(@Cast("float*") long losses, @Cast("float*") long dlogits, @Cast("const float*") long logits, @Cast("const float*") long targets,
      @Cast("int64_t") long n, float gradScale, @Cast("void*") long stream);

  public static native int bj_cpu_mse(@Cast("float*") long losses, @Cast("float*") long dpred, @Cast("const float*") long pred, @Cast("const float*") long targets,
      @Cast("int64_t") long n, float gradScale, @Cast("void*") long stream);

  public static native int bj_cpu_sum_squares(@Cast("float*") long out, @Cast("const float*") long x, @Cast("int64_t") long n, @Cast("void*") long stream);

  public static native int bj_cpu_clip_scale(@Cast("float*") long scale, @Cast("const float*") long normSq, float maxNorm, @Cast("void*") long stream);

  public static native int bj_cpu_adamw(@Cast("float*") long p, @Cast("uint16_t*") long pLow, @Cast("const float*") long g, @Cast("float*") long m, @Cast("float*") long v, @Cast("int64_t") long n,
      @Cast("int64_t") long decayBegin, @Cast("int64_t") long decayEnd, float lr, float beta1, float beta2, float eps, float wd, int step,
      @Cast("const bj_step_scalars*") long sc, @Cast("const float*") long gradScale, @Cast("void*") long stream);
}
