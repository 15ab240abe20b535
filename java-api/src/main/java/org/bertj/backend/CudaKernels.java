package org.bertj.backend;

import org.bertj.nativ.BertjCuda;

/** bertj.h's CUDA library ({@code bj_cuda_}) behind {@link Kernels}. */
final class CudaKernels implements Kernels {
  @Override
  public String lastError() {
    return BertjCuda.bj_cuda_last_error().getString();
  }

  @Override
  public int fill(long x, long n, float value, long stream) {
    return BertjCuda.bj_cuda_fill(x, n, value, stream);
  }

  @Override
  public int axpy(long y, long x, long n, float alpha, long stream) {
    return BertjCuda.bj_cuda_axpy(y, x, n, alpha, stream);
  }

  @Override
  public int scaleBy(long x, long n, long scale, long stream) {
    return BertjCuda.bj_cuda_scale_by(x, n, scale, stream);
  }

  @Override
  public int toBf16(long out, long x, long n, long stream) {
    return BertjCuda.bj_cuda_to_bf16(out, x, n, stream);
  }

  @Override
  public int fromBf16(long out, long x, long n, long stream) {
    return BertjCuda.bj_cuda_from_bf16(out, x, n, stream);
  }

  @Override
  public int gatherRows(long out, long in, long idx, int m, int c, int nIn, long stream) {
    return BertjCuda.bj_cuda_gather_rows(out, in, idx, m, c, nIn, stream);
  }

  @Override
  public int embeddingsForward(long out, long ids, long tt, long wte, long wpe, long wtt, int b, int t, int c, int v, int p, int tv, long stream) {
    return BertjCuda.bj_cuda_embeddings_forward(out, ids, tt, wte, wpe, wtt, b, t, c, v, p, tv, stream);
  }

  @Override
  public int embeddingsBackward(long dwte, long dwpe, long dwtt, long dout, long ids, long tt, int b, int t, int c, int v, int p, int tv, long stream) {
    return BertjCuda.bj_cuda_embeddings_backward(dwte, dwpe, dwtt, dout, ids, tt, b, t, c, v, p, tv, stream);
  }

  @Override
  public int layerNormForward(long out, long mean, long rstd, long hsave, long x, long residual, long gamma, long beta, int n, int c, float eps, long stream) {
    return BertjCuda.bj_cuda_layernorm_forward(out, mean, rstd, hsave, x, residual, gamma, beta, n, c, eps, stream);
  }

  @Override
  public int layerNormBackward(long dh, long dgamma, long dbeta, long dout, long h, long mean, long rstd, long gamma, int n, int c, long stream) {
    return BertjCuda.bj_cuda_layernorm_backward(dh, dgamma, dbeta, dout, h, mean, rstd, gamma, n, c, stream);
  }

  @Override
  public int dropoutLayerNormForward(long out, long outLow, long mean, long rstd, long hsave, long y, long residual, long gamma, long beta, int n, int c, float eps, float p, long seed, long offset, long sc, long stream) {
    return BertjCuda.bj_cuda_dropout_layernorm_forward(out, outLow, mean, rstd, hsave, y, residual, gamma, beta, n, c, eps, p, seed, offset, sc, stream);
  }

  @Override
  public int dropoutLayerNormBackward(long dh, long dy, long dyLow, long dgamma, long dbeta, long dbiasY, long dout, long h, long mean, long rstd, long gamma, int n, int c, float p, long seed, long offset, long sc, long stream) {
    return BertjCuda.bj_cuda_dropout_layernorm_backward(dh, dy, dyLow, dgamma, dbeta, dbiasY, dout, h, mean, rstd, gamma, n, c, p, seed, offset, sc, stream);
  }

  @Override
  public int biasAdd(long x, long bias, int n, int c, long stream) {
    return BertjCuda.bj_cuda_bias_add(x, bias, n, c, stream);
  }

  @Override
  public int biasBackward(long dbias, long dout, int n, int c, long stream) {
    return BertjCuda.bj_cuda_bias_backward(dbias, dout, n, c, stream);
  }

  @Override
  public int biasGeluForward(long out, long outLow, long pre, long x, long bias, int n, int c, long stream) {
    return BertjCuda.bj_cuda_bias_gelu_forward(out, outLow, pre, x, bias, n, c, stream);
  }

  @Override
  public int biasGeluBackward(long dpre, long dpreLow, long dbias, long dout, long pre, int n, int c, long stream) {
    return BertjCuda.bj_cuda_bias_gelu_backward(dpre, dpreLow, dbias, dout, pre, n, c, stream);
  }

  @Override
  public int tanhForward(long out, long x, long n, long stream) {
    return BertjCuda.bj_cuda_tanh_forward(out, x, n, stream);
  }

  @Override
  public int tanhBackward(long dx, long dout, long out, long n, long stream) {
    return BertjCuda.bj_cuda_tanh_backward(dx, dout, out, n, stream);
  }

  @Override
  public int dropoutForward(long out, long x, long n, float p, long seed, long offset, long sc, long stream) {
    return BertjCuda.bj_cuda_dropout_forward(out, x, n, p, seed, offset, sc, stream);
  }

  @Override
  public int dropoutBackward(long dx, long dout, long n, float p, long seed, long offset, long sc, long stream) {
    return BertjCuda.bj_cuda_dropout_backward(dx, dout, n, p, seed, offset, sc, stream);
  }

  @Override
  public int philoxUniform(long u, long n, long seed, long offset, long sc, long stream) {
    return BertjCuda.bj_cuda_philox_uniform(u, n, seed, offset, sc, stream);
  }

  @Override
  public int attentionForward(long out, long lse, long qkv, long mask, int b, int t, int nh, int d, float p, long seed, long offset, long sc, long stream) {
    return BertjCuda.bj_cuda_attention_forward(out, lse, qkv, mask, b, t, nh, d, p, seed, offset, sc, stream);
  }

  @Override
  public int attentionBackward(long dqkv, long dout, long qkv, long out, long lse, long mask, int b, int t, int nh, int d, float p, long seed, long offset, long sc, long stream) {
    return BertjCuda.bj_cuda_attention_backward(dqkv, dout, qkv, out, lse, mask, b, t, nh, d, p, seed, offset, sc, stream);
  }

  @Override
  public int attentionTcForward(long out, long outLow, long lse, long qkv, long mask, int b, int t, int nh, int d, float p, long seed, long offset, long sc, long stream) {
    return BertjCuda.bj_cuda_attention_tc_forward(out, outLow, lse, qkv, mask, b, t, nh, d, p, seed, offset, sc, stream);
  }

  @Override
  public int attentionTcBackward(long dqkv, long dqkvLow, long dout, long qkv, long out, long lse, long mask, int b, int t, int nh, int d, float p, long seed, long offset, long sc, long stream) {
    return BertjCuda.bj_cuda_attention_tc_backward(dqkv, dqkvLow, dout, qkv, out, lse, mask, b, t, nh, d, p, seed, offset, sc, stream);
  }

  @Override
  public int crossEntropy(long losses, long dlogits, long logits, long labels, int b, int l, float gradScale, long stream) {
    return BertjCuda.bj_cuda_cross_entropy(losses, dlogits, logits, labels, b, l, gradScale, stream);
  }

  @Override
  public int bceWithLogits(long losses, long dlogits, long logits, long targets, long n, float gradScale, long stream) {
    return BertjCuda.bj_cuda_bce_with_logits(losses, dlogits, logits, targets, n, gradScale, stream);
  }

  @Override
  public int mse(long losses, long dpred, long pred, long targets, long n, float gradScale, long stream) {
    return BertjCuda.bj_cuda_mse(losses, dpred, pred, targets, n, gradScale, stream);
  }

  @Override
  public int sumSquares(long out, long x, long n, long stream) {
    return BertjCuda.bj_cuda_sum_squares(out, x, n, stream);
  }

  @Override
  public int clipScale(long scale, long normSq, float maxNorm, long stream) {
    return BertjCuda.bj_cuda_clip_scale(scale, normSq, maxNorm, stream);
  }

  @Override
  public int adamw(long p, long pLow, long g, long m, long v, long n, long decayBegin, long decayEnd, float lr, float beta1, float beta2, float eps, float wd, int step, long sc, long gradScale, long stream) {
    return BertjCuda.bj_cuda_adamw(p, pLow, g, m, v, n, decayBegin, decayEnd, lr, beta1, beta2, eps, wd, step, sc, gradScale, stream);
  }
}
