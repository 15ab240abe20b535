/*
 * bertj.h: the flat C API of bertj's native kernels.
 *
 * Every op exists twice with the same signature: bj_cpu_<op> (native/cpu, OpenMP, the readable
 * reference) and bj_cuda_<op> (native/cuda). BJ_OP(name) below declares both when the matching
 * macro is defined; JavaCPP binds each library through its own class. The two prefixes keep the
 * libraries loadable side by side in one process.
 *
 * Conventions (shared by both backends)
 * - Row-major, fp32, contiguous unless a stride is given. Shapes in comments: (B, T, C) means
 *   batch B, sequence T, channels C, C fastest.
 * - Token-wise ops take N = number of rows (tokens) and C = row length.
 * - Gradients of activations are written with "=", gradients of parameters are accumulated
 *   with "+=" (so that micro-batches can be accumulated; the caller zeroes them per step).
 * - `stream` is a cudaStream_t on CUDA (NULL = default stream) and ignored on the CPU.
 * - No kernel allocates memory, prints or exits. Every function returns BJ_OK (0) or an error
 *   code; bj_*_last_error() gives a message for the calling thread's last failure.
 * - Dropout uses Philox-4x32-10 keyed by (seed, offset): element i of a dropout call uses the
 *   counter (lo32(offset + i), hi32(offset + i), 0, 0) and key (lo32(seed), hi32(seed)); the first
 *   output word u32 gives u = (u32 >> 8) * 2^-24; the element is kept when u >= p and kept values
 *   are scaled by 1 / (1 - p). CPU and CUDA therefore draw bit-identical masks.
 * - Per-step scalars (bj_step_scalars below), for CUDA graphs: a captured graph bakes the kernel
 *   arguments in, but the dropout seed and AdamW's lr and step change every training step. So
 *   every op taking a seed has a `const bj_step_scalars* sc` parameter after `offset`, and adamw
 *   one after `step`: NULL uses the value arguments; otherwise the op reads the seed (adamw: lr
 *   and step) from *sc when it runs (on CUDA inside the kernels: sc is device memory, never read
 *   on the host) and ignores those value arguments, with the same bits as the value path given
 *   the same values. A replayed graph thus picks up the values uploaded into *sc before it. The
 *   host cannot check a device value: on CUDA the caller guarantees sc->lr >= 0 and
 *   sc->step >= 1 (the CPU checks them like the arguments).
 */
#ifndef BERTJ_H
#define BERTJ_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BJ_OK 0
#define BJ_ERR_INVALID 1     /* a bad argument (size, null pointer, probability...) */
#define BJ_ERR_CUDA 2        /* a CUDA launch or runtime error */
#define BJ_ERR_UNSUPPORTED 3 /* a shape or option this backend does not implement */

/* Per-step scalars in backend memory (device memory on CUDA): ops given a non-NULL pointer read
   their dropout seed / AdamW lr and step from it instead of their value arguments (which are then
   ignored), so a captured CUDA graph replays with each step's values. 16 bytes. */
typedef struct bj_step_scalars {
  uint64_t seed; /* dropout seed */
  float lr;      /* AdamW learning rate */
  int32_t step;  /* AdamW step, counting from 1 */
} bj_step_scalars;

#define BJ_DECLARE_OPS(P)                                                                        \
  /* Message for the calling thread's last error ("" if none). */                               \
  const char* P##last_error(void);                                                              \
  /* Number of threads the backend uses (OpenMP on CPU; 0 on CUDA). */                          \
  int P##num_threads(void);                                                                     \
                                                                                                \
  /* ---- memory helpers (CPU: host memory, CUDA: device memory) ---- */                       \
  /* x[i] = value for i in [0, n). */                                                           \
  int P##fill(float* x, int64_t n, float value, void* stream);                                  \
  /* y[i] += alpha * x[i]. */                                                                    \
  int P##axpy(float* y, const float* x, int64_t n, float alpha, void* stream);                  \
  /* x[i] *= (*scale) (scale is a pointer to one float in backend memory). */                   \
  int P##scale_by(float* x, int64_t n, const float* scale, void* stream);                       \
  /* out[i] = bf16(x[i]), round to nearest even (NaN stays NaN); bf16 as its uint16 bits.     \
     Used for the bf16 copies of GEMM inputs (mixed precision). */                              \
  int P##to_bf16(uint16_t* out, const float* x, int64_t n, void* stream);                       \
  /* out[i] = float(x[i]) (exact). */                                                           \
  int P##from_bf16(float* out, const uint16_t* x, int64_t n, void* stream);                     \
  /* out row r (C floats) = in row idx[r] when idx[r] >= 0, else zeros, for r in [0, M);        \
     in (n_in, C), out (M, C), idx (M) int32. Used for padding removal (gather the real         \
     tokens' rows) and its inverse (scatter back with the inverse index, -1 = pad row). out     \
     must not overlap in (BJ_ERR_INVALID). An idx[r] >= n_in is never read: the CPU checks      \
     every index first and returns BJ_ERR_INVALID, writing nothing; CUDA (which cannot check    \
     device-side indices without a sync) fills such rows with NaN, so that the error            \
     surfaces downstream, and returns BJ_OK. Callers validate the index on the host. */         \
  int P##gather_rows(float* out, const float* in, const int32_t* idx, int M, int C, int n_in,   \
                     void* stream);                                                             \
                                                                                                \
  /* ---- embeddings ---- */                                                                    \
  /* out (N=B*T, C) = wte[ids] + wpe[t] + wtt[tt]; position of row r is r % T.                  \
     ids, tt: (B, T) int32 (tt may be NULL = type 0). Ids outside [0, V) or types outside         \
     [0, TV) return BJ_ERR_INVALID on the CPU; callers validate ids before. */                  \
  int P##embeddings_forward(float* out, const int32_t* ids, const int32_t* tt,                  \
                            const float* wte, const float* wpe, const float* wtt, int B, int T, \
                            int C, int V, int P_, int TV, void* stream);                        \
  /* dwte[ids] += dout, dwpe[t] += dout, dwtt[tt] += dout; deterministic (fixed order).         \
     dwtt may be NULL. */                                                                       \
  int P##embeddings_backward(float* dwte, float* dwpe, float* dwtt, const float* dout,          \
                             const int32_t* ids, const int32_t* tt, int B, int T, int C, int V, \
                             int P_, int TV, void* stream);                                     \
                                                                                                \
  /* ---- layer norm with fused residual ---- */                                               \
  /* h = x + residual (residual may be NULL); out = (h - mean) * rstd * gamma + beta.           \
     Saves mean (N), rstd (N) and, when hsave != NULL, h (N, C) for the backward pass.          \
     out may alias x. */                                                                         \
  int P##layernorm_forward(float* out, float* mean, float* rstd, float* hsave, const float* x,  \
                           const float* residual, const float* gamma, const float* beta, int N, \
                           int C, float eps, void* stream);                                     \
  /* dh (N, C) = d out / d h (written, "="); dgamma, dbeta (C) accumulated ("+=").               \
     h is the saved input (hsave). dh is the gradient of both x and residual. */                \
  int P##layernorm_backward(float* dh, float* dgamma, float* dbeta, const float* dout,          \
                            const float* h, const float* mean, const float* rstd,               \
                            const float* gamma, int N, int C, void* stream);                    \
  /* Dropout fused into the residual layer norm (BERT's BertSelfOutput / BertOutput):            \
     h = dropout(y) + residual (residual may be NULL), out = LN(h) * gamma + beta, where         \
     dropout(y)[i] = y[i] * keep_i / (1 - p) with the Philox mask of (seed, offset) over the      \
     (N, C) elements i = n * C + c: the same mask and bits as dropout_forward followed by         \
     layernorm_forward. p in [0, 1); p = 0 is layernorm_forward. Saves mean, rstd and, when      \
     hsave != NULL, h. out may alias y. out_low (N, C), when not NULL, gets bf16 bits of out,    \
     the same bits as to_bf16(out) (the bf16 copy of the next Linear's input, written in the     \
     same pass). */                                                                              \
  int P##dropout_layernorm_forward(float* out, uint16_t* out_low, float* mean, float* rstd,     \
                                   float* hsave, const float* y, const float* residual,          \
                                   const float* gamma, const float* beta, int N, int C,          \
                                   float eps, float p, uint64_t seed, uint64_t offset,          \
                                   const bj_step_scalars* sc, void* stream);                    \
  /* Its backward: dh (N, C) = d out / d h (the residual's gradient, "="), dy (N, C) = dh *      \
     keep / (1 - p) (y's gradient, "=", same mask; may be NULL), dgamma, dbeta (C) "+=".          \
     dh and dy may alias dout, not each other. Same bits as layernorm_backward then              \
     dropout_backward. dy_low (N, C), when not NULL, gets bf16 bits of dy, the same bits as      \
     to_bf16(dy); it needs dy != NULL (else BJ_ERR_INVALID). dbias_y (C), when not NULL, gets    \
     "+=" the column sums of dy (the gradient of the bias of the Linear that produced y): the    \
     same as bias_backward(dbias_y, dy, N, C) afterwards, up to the summation order (fixed:      \
     deterministic, like dgamma/dbeta); it needs dy != NULL (else BJ_ERR_INVALID). */            \
  int P##dropout_layernorm_backward(float* dh, float* dy, uint16_t* dy_low, float* dgamma,      \
                                    float* dbeta, float* dbias_y, const float* dout,             \
                                    const float* h, const float* mean, const float* rstd,        \
                                    const float* gamma, int N, int C, float p, uint64_t seed,    \
                                    uint64_t offset, const bj_step_scalars* sc, void* stream);  \
                                                                                                \
  /* ---- bias, GELU ---- */                                                                    \
  /* x (N, C) += bias (C). */                                                                    \
  int P##bias_add(float* x, const float* bias, int N, int C, void* stream);                     \
  /* dbias (C) += sum over rows of dout (N, C). */                                               \
  int P##bias_backward(float* dbias, const float* dout, int N, int C, void* stream);            \
  /* pre = x + bias (bias may be NULL); out = gelu(pre) with exact erf GELU                     \
     0.5 * pre * (1 + erf(pre / sqrt(2))). out_low (N, C), when not NULL, gets bf16 bits of     \
     out, the same bits as to_bf16(out) (the next Linear's bf16 input, written in the same      \
     pass). out and pre may alias x. Optional outputs (inference, where only the backward reads \
     them): pre may be NULL (x + bias is not stored; x is not written unless out aliases it);   \
     out may be NULL when out_low is not (only out_low is written, the same bits as with out).  \
     out and out_low both NULL: BJ_ERR_INVALID. */                                              \
  int P##bias_gelu_forward(float* out, uint16_t* out_low, float* pre, const float* x,          \
                           const float* bias, int N, int C, void* stream);                      \
  /* dpre = dout * gelu'(pre) ("=", may alias dout); dbias += column sums of dpre (dbias may     \
     be NULL). dpre_low (N, C), when not NULL, gets bf16 bits of dpre, the same bits as          \
     to_bf16(dpre). */                                                                           \
  int P##bias_gelu_backward(float* dpre, uint16_t* dpre_low, float* dbias, const float* dout,  \
                            const float* pre, int N, int C, void* stream);                      \
                                                                                                \
  /* ---- tanh (pooler) ---- */                                                                 \
  /* out = tanh(x) (may alias). */                                                               \
  int P##tanh_forward(float* out, const float* x, int64_t n, void* stream);                     \
  /* dx = dout * (1 - out^2) ("=", may alias dout). */                                          \
  int P##tanh_backward(float* dx, const float* dout, const float* out, int64_t n,              \
                       void* stream);                                                           \
                                                                                                \
  /* ---- dropout ---- */                                                                       \
  /* out = x * keep / (1 - p) with the Philox mask of (seed, offset); may alias. p in [0, 1). */ \
  int P##dropout_forward(float* out, const float* x, int64_t n, float p, uint64_t seed,         \
                         uint64_t offset, const bj_step_scalars* sc, void* stream);             \
  /* dx = dout * keep / (1 - p), the same mask ("=", may alias). */                             \
  int P##dropout_backward(float* dx, const float* dout, int64_t n, float p, uint64_t seed,      \
                          uint64_t offset, const bj_step_scalars* sc, void* stream);            \
  /* u[i] = the uniform in [0, 1) that dropout element i of (seed, offset) draws (for tests). */ \
  int P##philox_uniform(float* u, int64_t n, uint64_t seed, uint64_t offset,                    \
                        const bj_step_scalars* sc, void* stream);                               \
                                                                                                \
  /* ---- self-attention core ---- */                                                          \
  /* qkv (B, T, 3C): per token [q (C) | k (C) | v (C)], each C = NH * D with head h at          \
     [h*D, (h+1)*D). mask (B, T) int32: 1 = real key, 0 = padded key (NULL = all real).          \
     For each (b, h, i): s_j = q_i . k_j / sqrt(D) for real keys j; P = softmax(s) over real     \
     keys (a row with no real key attends uniformly to all T keys, as Hugging Face's additive    \
     mask gives); dropout on P with the Philox mask of element ((b*NH + h)*T + i)*T + j;        \
     out_i = sum_j Pdrop_ij v_j, written to out (B, T, C) at head h's channels.                   \
     lse (B, NH, T) saves the log-sum-exp of the scaled, masked scores for the backward. */     \
  int P##attention_forward(float* out, float* lse, const float* qkv, const int32_t* mask,      \
                           int B, int T, int NH, int D, float p, uint64_t seed,                 \
                           uint64_t offset, const bj_step_scalars* sc, void* stream);           \
  /* dqkv (B, T, 3C) = gradient w.r.t. qkv ("="), from dout (B, T, C), the saved out and lse,   \
     recomputing the probabilities and the same dropout mask. */                                \
  int P##attention_backward(float* dqkv, const float* dout, const float* qkv,                  \
                            const float* out, const float* lse, const int32_t* mask, int B,     \
                            int T, int NH, int D, float p, uint64_t seed, uint64_t offset,      \
                            const bj_step_scalars* sc, void* stream);                           \
                                                                                                \
  /* ---- self-attention core on bf16 tensor cores ("tc", for the bf16 mixed-precision mode) -- */ \
  /* Same parameters, layout, mask, dropout (Philox element index), lse and gradient convention  \
     as attention_forward / attention_backward; only the numerics differ: q, k, v (and dout)    \
     are rounded to bf16 (nearest even) when loaded, S = q k^T is accumulated in fp32, softmax   \
     statistics are fp32, Pdrop is rounded to bf16 before Pdrop v. Backward: dP = dO V^T in      \
     fp32 from bf16 operands, D_i = bf16(dout_i) . out_i in fp32, dS = P (dP - D) rounded to    \
     bf16 (unscaled) before dS K and dS^T Q, Pdrop rounded to bf16 for Pdrop^T dO; every product \
     accumulates in fp32 and the 1/sqrt(D) of dq, dk is applied in fp32 after. Outputs fp32.    \
     Supported: T <= 128 and D in {32, 64}; otherwise BJ_ERR_UNSUPPORTED (callers fall back to    \
     the fp32 ops). The CPU version is the reference of the CUDA one (same rounding points).    \
     Optional bf16 side outputs (NULL = none), for the bf16 GEMM that consumes the result:      \
     out_low (B, T, C) = to_bf16(out) and dqkv_low (B, T, 3C) = to_bf16(dqkv), the same bits as \
     to_bf16 of the fp32 output, written in the same pass (the fp32 outputs are unchanged).     \
     The forward's out may be NULL when out_low is not (inference: only the bf16 copy is        \
     written, the same bits; lse is still written); out and out_low both NULL: BJ_ERR_INVALID.  \
     The backward needs the fp32 out. */                                                        \
  int P##attention_tc_forward(float* out, uint16_t* out_low, float* lse, const float* qkv,     \
                              const int32_t* mask, int B, int T, int NH, int D, float p,        \
                              uint64_t seed, uint64_t offset, const bj_step_scalars* sc,        \
                              void* stream);                                                    \
  int P##attention_tc_backward(float* dqkv, uint16_t* dqkv_low, const float* dout,             \
                               const float* qkv, const float* out, const float* lse,            \
                               const int32_t* mask, int B, int T, int NH, int D, float p,       \
                               uint64_t seed, uint64_t offset, const bj_step_scalars* sc,       \
                               void* stream);                                                   \
                                                                                                \
  /* ---- losses (per-element loss values and the gradient in one pass) ---- */                \
  /* Softmax cross-entropy. logits (B, L), labels (B) int32; a label < 0 is ignored (loss 0,     \
     grad 0); a label >= L returns BJ_ERR_INVALID. losses (B) = -log softmax(logits)[label];     \
     dlogits (B, L) = (softmax - onehot) * grad_scale ("="). dlogits may be NULL. */            \
  int P##cross_entropy(float* losses, float* dlogits, const float* logits,                     \
                       const int32_t* labels, int B, int L, float grad_scale, void* stream);    \
  /* BCE with logits, elementwise over n = B * L: losses[i] = max(x,0) - x*y + log(1+e^-|x|);   \
     dlogits[i] = (sigmoid(x) - y) * grad_scale (dlogits may be NULL). */                                             \
  int P##bce_with_logits(float* losses, float* dlogits, const float* logits,                   \
                         const float* targets, int64_t n, float grad_scale, void* stream);      \
  /* MSE, elementwise: losses[i] = (x - y)^2; dpred[i] = 2 (x - y) * grad_scale (dpred may be NULL). */             \
  int P##mse(float* losses, float* dpred, const float* pred, const float* targets, int64_t n,  \
             float grad_scale, void* stream);                                                   \
                                                                                                \
  /* ---- optimizer ---- */                                                                     \
  /* out[0] = sum of x[i]^2 over [0, n) (accumulated in double on the CPU; fixed order). */     \
  int P##sum_squares(float* out, const float* x, int64_t n, void* stream);                      \
  /* scale[0] = min(1, max_norm / (sqrt(norm_sq[0]) + 1e-6)) (torch clip_grad_norm_). */        \
  int P##clip_scale(float* scale, const float* norm_sq, float max_norm, void* stream);          \
  /* torch.optim.AdamW over one flat parameter buffer of n floats, after g *= (*grad_scale)     \
     (grad_scale may be NULL = 1; g itself is not modified):                                    \
       p -= lr * wd * p   (only for i in [decay_begin, decay_end))                              \
       m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2                                          \
       p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)                          \
     step counts from 1. p_low (n) may be NULL; otherwise p_low[i] = to_bf16(p[i]) of the         \
     UPDATED p, in the same pass (the bf16 mirror of the parameters in mixed precision).         \
     sc != NULL: lr and step are sc->lr and sc->step (see the conventions above). */             \
  int P##adamw(float* p, uint16_t* p_low, const float* g, float* m, float* v, int64_t n,       \
               int64_t decay_begin, int64_t decay_end, float lr, float beta1, float beta2,      \
               float eps, float wd, int step, const bj_step_scalars* sc,                        \
               const float* grad_scale, void* stream);

BJ_DECLARE_OPS(bj_cpu_)

#ifdef BJ_WITH_CUDA
BJ_DECLARE_OPS(bj_cuda_)
/* cudaGetDeviceCount, or a negative CUDA error code. Safe without a driver. */
int bj_cuda_device_count(void);
#endif

#ifdef __cplusplus
}
#endif

#endif /* BERTJ_H */
