// Timing of the main CUDA kernels with cudaEvents (not a ctest). Prints one table row per case:
// microseconds per call (median of 5 batches of `iters` calls, after warm-up), the achieved
// bandwidth counting the bytes each op must move (reads + writes of its inputs and outputs, once),
// and for attention the achieved TFLOP/s (forward 4 B NH T^2 D, backward 10 B NH T^2 D: the usual
// flash-attention count, so the backward's recomputation is not credited). The layer norm
// backward is timed with each of its kernels (BJ_LN_IMPL=v1, v2, v2np, v2l2, v3, v3a,
// v3g, v3gp), and dropout + layer norm fused
// against the two separate ops (GB/s of the fused op's bytes for both rows), and its backward with
// the Linear's bias gradient in the same pass ("+dbias") against the op then bias_backward
// ("+bias_bwd"; N = 4096, C = 384 and 768). The ops with a bf16
// side output (dropout_layernorm_*, bias_gelu_*) also with it ("+bf16") against the op then
// to_bf16 ("+to_bf16"; GB/s of the op's bytes plus the 2-byte copy, for both rows).
//   bench_cuda_ops            (exit 77 when no device)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bertj.h"

namespace {
struct Buf {
  float* p = nullptr;
  size_t n = 0;
  explicit Buf(size_t n_, float lo = -1.0f, float hi = 1.0f, uint64_t seed = 1) : n(n_) {
    if (cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(float)) != cudaSuccess) {
      std::fprintf(stderr, "cudaMalloc of %zu floats failed\n", n);
      std::exit(1);
    }
    std::vector<float> h(std::min<size_t>(n, 1 << 22));
    std::mt19937 g((unsigned)seed);
    std::uniform_real_distribution<float> d(lo, hi);
    for (auto& x : h) x = d(g);
    for (size_t o = 0; o < n; o += h.size())
      cudaMemcpy(p + o, h.data(), std::min(h.size(), n - o) * sizeof(float),
                 cudaMemcpyHostToDevice);
  }
  ~Buf() { cudaFree(p); }
};

bool g_failed = false;

// Times an op twice when it has a previous kernel (BJ_KERNEL_V1, native/cuda/kernel_select.cuh):
// the current one (row "op"), then the v1 one (row "op [v1]"), in the same process.
template <class F>
void both(const std::string& op, const char* v1_name, const std::string& shape, double bytes,
          int iters, const F& f);

// Median microseconds per call of f.
double time_us(const std::function<int()>& f, int iters) {
  for (int i = 0; i < 3; ++i)
    if (f() != BJ_OK) {
      std::printf("  call failed: %s\n", bj_cuda_last_error());
      g_failed = true;
      return -1.0;
    }
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<double> t;
  for (int rep = 0; rep < 5; ++rep) {
    cudaEventRecord(a);
    for (int i = 0; i < iters; ++i) f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(1000.0 * ms / iters);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) {
    std::printf("  CUDA error: %s\n", cudaGetErrorString(e));
    g_failed = true;
  }
  std::sort(t.begin(), t.end());
  return t[2];
}

void row(const std::string& op, const std::string& shape, double us, double bytes,
         double flops = 0.0) {
  if (us < 0) {
    std::printf("| %-28s | %-40s | %10s | %8s | %8s |\n", op.c_str(), shape.c_str(), "FAILED", "",
                "");
    return;
  }
  char tf[32] = "";
  if (flops > 0) std::snprintf(tf, sizeof tf, "%.2f", flops / us * 1e-6);
  std::printf("| %-28s | %-40s | %10.1f | %8.0f | %8s |\n", op.c_str(), shape.c_str(), us,
              bytes / us * 1e-3, tf);
}
template <class F>
void both(const std::string& op, const char* v1_name, const std::string& shape, double bytes,
          int iters, const F& f) {
  unsetenv("BJ_KERNEL_V1");
  row(op, shape, time_us(f, iters), bytes);
  setenv("BJ_KERNEL_V1", v1_name, 1);
  row(op + " [v1]", shape, time_us(f, iters), bytes);
  unsetenv("BJ_KERNEL_V1");
}
}  // namespace

int main() {
  unsetenv("BJ_KERNEL_V1");  // "op" rows are the current kernels; "op [v1]" rows set it
  const int ndev = bj_cuda_device_count();
  if (ndev <= 0) {
    std::printf("SKIP: no CUDA device (%d: %s)\n", ndev, bj_cuda_last_error());
    return 77;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("bench_cuda_ops on %s (%d SMs)\n\n", prop.name, prop.multiProcessorCount);
  std::printf("| %-28s | %-40s | %10s | %8s | %8s |\n", "op", "shape", "us", "GB/s", "TFLOP/s");
  std::printf("|%s|%s|%s|%s|%s|\n", std::string(30, '-').c_str(), std::string(36, '-').c_str(),
              std::string(12, '-').c_str(), std::string(10, '-').c_str(),
              std::string(10, '-').c_str());
  const double F = sizeof(float);
  // BJ_BENCH_ONLY=<sections> (comma-separated: copy, attention, attention_tc, rows, embeddings,
  // optimizer) times only those; unset, all of them.
  const char* only = std::getenv("BJ_BENCH_ONLY");
  const std::string onlyList = std::string(",") + (only ? only : "") + ",";
  auto want = [&](const char* sec) {
    return only == nullptr || onlyList.find(std::string(",") + sec + ",") != std::string::npos;
  };

  // ---- the bandwidth ceiling: device-to-device copy of 1 GiB (bytes read + written) ----
  if (want("copy")) {
    const size_t n = (size_t)1 << 28;  // floats
    Buf src(n), dst(n);
    auto cp = [&] {
      return cudaMemcpyAsync(dst.p, src.p, n * sizeof(float), cudaMemcpyDeviceToDevice) ==
                     cudaSuccess ? 0 : 2;
    };
    row("d2d copy (ceiling)", "1 GiB", time_us(cp, 10), 2.0 * F * n);
  }
  if (want("copy")) {  // the copy at the size of the bandwidth-bound ops below (N=4096 rows): what a launch of that
     // size reaches; the 1 GiB line stays the ceiling the op rows are compared with
    for (const size_t n : {(size_t)4096 * 768, (size_t)4096 * 3072}) {
      Buf src(n), dst(n);
      auto cp = [&] {
        return cudaMemcpyAsync(dst.p, src.p, n * sizeof(float), cudaMemcpyDeviceToDevice) ==
                       cudaSuccess ? 0 : 2;
      };
      row("d2d copy (same size)", n == (size_t)4096 * 768 ? "N=4096 C=768" : "N=4096 C=3072",
          time_us(cp, 50), 2.0 * F * n);
    }
  }

  // ---- fused attention, bert-base shape ----
  if (want("attention")) {
    const int B = 32, T = 128, NH = 12, D = 64, C = NH * D;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nlse = (size_t)B * NH * T;
    Buf qkv(nqkv, -2.0f, 2.0f, 2), out(nout), lse(nlse), dout(nout, -1.0f, 1.0f, 3), dqkv(nqkv);
    Buf lowbuf((nout + 1) / 2);
    uint16_t* low = reinterpret_cast<uint16_t*>(lowbuf.p);  // (nout) bf16 copy of out
    std::vector<int32_t> hmask((size_t)B * T, 1);
    std::mt19937 g(7);
    std::uniform_int_distribution<int> len(T / 2, T);
    long real = 0;
    for (int b = 0; b < B; ++b) {
      const int L = b == 0 ? T : len(g);
      real += L;
      for (int t = L; t < T; ++t) hmask[(size_t)b * T + t] = 0;
    }
    int32_t* mask = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&mask), hmask.size() * sizeof(int32_t));
    cudaMemcpy(mask, hmask.data(), hmask.size() * sizeof(int32_t), cudaMemcpyHostToDevice);
    const double fl = 4.0 * B * NH * (double)T * T * D;
    const double fwd_bytes = F * (nqkv + nout + nlse) + 4.0 * B * T;
    const double bwd_bytes = F * (nqkv + 2.0 * nout + nlse + nqkv) + 4.0 * B * T;
    // Each attention row three times: BJ_ATTN_IMPL=v1 (the kernels before the v2 work), v2 (the
    // default) and v3 (v3 backward at D = 64, T <= 128; v2 forward), labelled "[v1]" / "[v2]" /
    // "[v3]"; the variable is restored afterwards.
    const char* impl_env = std::getenv("BJ_ATTN_IMPL");
    const std::string impl_saved = impl_env ? impl_env : "";
    for (const char* impl : {"v1", "v2", "v3"}) {
    setenv("BJ_ATTN_IMPL", impl, 1);
    const std::string tag = std::string(" [") + impl + "]";
    for (int masked = 1; masked >= 0; --masked) {
      for (float p : {0.1f, 0.0f}) {
        const int32_t* m = masked ? mask : nullptr;
        char sh[96];
        std::snprintf(sh, sizeof sh, "B32 T128 NH12 D64 %s p=%.1f%s",
                      masked ? "mask" : "nomask", p, tag.c_str());
        auto fwd = [&] {
          return bj_cuda_attention_forward(out.p, lse.p, qkv.p, m, B, T, NH, D, p, 42, 0, nullptr,
                                           nullptr);
        };
        auto bwd = [&] {
          return bj_cuda_attention_backward(dqkv.p, dout.p, qkv.p, out.p, lse.p, m, B, T, NH, D, p,
                                            42, 0, nullptr, nullptr);
        };
        const double tf = time_us(fwd, 20), tb = time_us(bwd, 20);
        row("attention fwd", sh, tf, fwd_bytes, fl);
        row("attention bwd", sh, tb, bwd_bytes, 2.5 * fl);
        row("attention fwd+bwd", sh, tf < 0 || tb < 0 ? -1 : tf + tb, fwd_bytes + bwd_bytes,
            3.5 * fl);
      }
    }
    std::printf("(mask: %.0f%% of the keys are real)\n", 100.0 * real / (B * T));
    // other head dims, for reference
    for (int d : {32, 128}) {
      const int nh = C / d;
      char sh[96];
      std::snprintf(sh, sizeof sh, "B32 T128 NH%d D%d mask p=0.1%s", nh, d, tag.c_str());
      auto fwd = [&] {
        return bj_cuda_attention_forward(out.p, lse.p, qkv.p, mask, B, T, nh, d, 0.1f, 42, 0,
                                         nullptr, nullptr);
      };
      auto bwd = [&] {
        return bj_cuda_attention_backward(dqkv.p, dout.p, qkv.p, out.p, lse.p, mask, B, T, nh, d,
                                          0.1f, 42, 0, nullptr, nullptr);
      };
      row("attention fwd", sh, time_us(fwd, 10), fwd_bytes, fl);
      row("attention bwd", sh, time_us(bwd, 10), bwd_bytes, 2.5 * fl);
    }
    {
      const int b2 = 4, t2 = 512;
      const double fl2 = 4.0 * b2 * NH * (double)t2 * t2 * D;
      auto fwd = [&] {
        return bj_cuda_attention_forward(out.p, lse.p, qkv.p, nullptr, b2, t2, NH, D, 0.1f, 42, 0,
                                         nullptr, nullptr);
      };
      auto bwd = [&] {
        return bj_cuda_attention_backward(dqkv.p, dout.p, qkv.p, out.p, lse.p, nullptr, b2, t2, NH,
                                          D, 0.1f, 42, 0, nullptr, nullptr);
      };
      const std::string sh2 = "B4 T512 NH12 D64 nomask p=0.1" + tag;
      row("attention fwd", sh2, time_us(fwd, 10), fwd_bytes, fl2);
      row("attention bwd", sh2, time_us(bwd, 10), bwd_bytes, 2.5 * fl2);
    }
    }  // impl
    if (impl_env) setenv("BJ_ATTN_IMPL", impl_saved.c_str(), 1);
    else unsetenv("BJ_ATTN_IMPL");
    cudaFree(mask);
  }

  // ---- attention on bf16 tensor cores (attention_tc), bert-base shape, the same padding mask
  // as the fp32 rows above (lengths T/2..T, generator seed 7) ----
  if (want("attention_tc")) {
    const int B = 32, T = 128, NH = 12, D = 64, C = NH * D;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nlse = (size_t)B * NH * T;
    Buf qkv(nqkv, -2.0f, 2.0f, 2), out(nout), lse(nlse), dout(nout, -1.0f, 1.0f, 3), dqkv(nqkv);
    Buf lowbuf((nout + 1) / 2);
    uint16_t* low = reinterpret_cast<uint16_t*>(lowbuf.p);  // (nout) bf16 copy of out
    std::vector<int32_t> hmask((size_t)B * T, 1);
    std::mt19937 g(7);
    std::uniform_int_distribution<int> len(T / 2, T);
    for (int b = 0; b < B; ++b)
      for (int t = b == 0 ? T : len(g); t < T; ++t) hmask[(size_t)b * T + t] = 0;
    int32_t* mask = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&mask), hmask.size() * sizeof(int32_t));
    cudaMemcpy(mask, hmask.data(), hmask.size() * sizeof(int32_t), cudaMemcpyHostToDevice);
    const double fl = 4.0 * B * NH * (double)T * T * D;
    const double fwd_bytes = F * (nqkv + nout + nlse) + 4.0 * B * T;
    const double bwd_bytes = F * (nqkv + 2.0 * nout + nlse + nqkv) + 4.0 * B * T;
    for (float p : {0.1f, 0.0f}) {
      char sh[96];
      std::snprintf(sh, sizeof sh, "B32 T128 NH12 D64 mask p=%.1f", p);
      auto fwd = [&] {
        return bj_cuda_attention_tc_forward(out.p, nullptr, lse.p, qkv.p, mask, B, T, NH, D, p,
                                            42, 0, nullptr, nullptr);
      };
      auto bwd = [&] {
        return bj_cuda_attention_tc_backward(dqkv.p, nullptr, dout.p, qkv.p, out.p, lse.p, mask,
                                             B, T, NH, D, p, 42, 0, nullptr, nullptr);
      };
      // the forward with 64-row query chunks too (BJ_ATTN_TC_FWD_ROWS; 32 is the default)
      setenv("BJ_ATTN_TC_FWD_ROWS", "64", 1);
      row("attention_tc fwd rows=64", sh, time_us(fwd, 20), fwd_bytes, fl);
      unsetenv("BJ_ATTN_TC_FWD_ROWS");
      // and the warp-private forward (BJ_ATTN_TC_FWD=warp)
      setenv("BJ_ATTN_TC_FWD", "warp", 1);
      row("attention_tc fwd [warp]", sh, time_us(fwd, 20), fwd_bytes, fl);
      unsetenv("BJ_ATTN_TC_FWD");
      const double tf = time_us(fwd, 20), tb = time_us(bwd, 20);
      row("attention_tc fwd", sh, tf, fwd_bytes, fl);
      row("attention_tc bwd", sh, tb, bwd_bytes, 2.5 * fl);
      row("attention_tc fwd+bwd", sh, tf < 0 || tb < 0 ? -1 : tf + tb, fwd_bytes + bwd_bytes,
          3.5 * fl);
      // inference: only the bf16 copy of out (out NULL)
      row("attention_tc fwd bf16 only", sh, time_us([&] {
            return bj_cuda_attention_tc_forward(nullptr, low, lse.p, qkv.p, mask, B, T, NH, D, p,
                                                42, 0, nullptr, nullptr);
          }, 20),
          F * (nqkv + nlse) + 2.0 * nout + 4.0 * B * T, fl);
      setenv("BJ_ATTN_TC_FWD", "warp", 1);
      row("attention_tc fwd bf16 [warp]", sh, time_us([&] {
            return bj_cuda_attention_tc_forward(nullptr, low, lse.p, qkv.p, mask, B, T, NH, D, p,
                                                42, 0, nullptr, nullptr);
          }, 20),
          F * (nqkv + nlse) + 2.0 * nout + 4.0 * B * T, fl);
      unsetenv("BJ_ATTN_TC_FWD");
    }
    cudaFree(mask);
  }
  // inference batch 128 (the same mask rule, generator seed 7): the bf16-only forward (out NULL,
  // p = 0), the default kernel and the warp-private one (BJ_ATTN_TC_FWD=warp)
  if (want("attention_tc")) {
    const int B = 128, T = 128, NH = 12, D = 64, C = NH * D;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nlse = (size_t)B * NH * T;
    Buf qkv(nqkv, -2.0f, 2.0f, 2), lse(nlse), lowbuf((nout + 1) / 2);
    uint16_t* low = reinterpret_cast<uint16_t*>(lowbuf.p);
    std::vector<int32_t> hmask((size_t)B * T, 1);
    std::mt19937 g(7);
    std::uniform_int_distribution<int> len(T / 2, T);
    for (int b = 0; b < B; ++b)
      for (int t = b == 0 ? T : len(g); t < T; ++t) hmask[(size_t)b * T + t] = 0;
    int32_t* mask = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&mask), hmask.size() * sizeof(int32_t));
    cudaMemcpy(mask, hmask.data(), hmask.size() * sizeof(int32_t), cudaMemcpyHostToDevice);
    const double fl = 4.0 * B * NH * (double)T * T * D;
    const double bytes = F * (nqkv + nlse) + 2.0 * nout + 4.0 * B * T;
    const char* sh = "B128 T128 NH12 D64 mask p=0.0";
    auto fwd = [&] {
      return bj_cuda_attention_tc_forward(nullptr, low, lse.p, qkv.p, mask, B, T, NH, D, 0.0f, 42,
                                          0, nullptr, nullptr);
    };
    row("attention_tc fwd bf16 only", sh, time_us(fwd, 20), bytes, fl);
    setenv("BJ_ATTN_TC_FWD", "warp", 1);
    row("attention_tc fwd bf16 [warp]", sh, time_us(fwd, 20), bytes, fl);
    unsetenv("BJ_ATTN_TC_FWD");
    cudaFree(mask);
  }

  // ---- layer norm + residual, bias + GELU ----
  if (want("rows")) {
    const int N = 4096;
    for (int C : {384, 768, 3072}) {  // MiniLM, BERT-base hidden, BERT-base intermediate
      const size_t n = (size_t)N * C;
      Buf x(n), r(n), out(n), h(n), mean(N), rstd(N), gamma(C, 0.5f, 1.5f), beta(C), dout(n),
          dh(n), dg(C), db(C), pre(n), dpre(n), bias(C), lowbuf((n + 1) / 2);
      uint16_t* low = reinterpret_cast<uint16_t*>(lowbuf.p);  // (n) bf16 side outputs
      char sh[64];
      std::snprintf(sh, sizeof sh, "N=%d C=%d", N, C);
      row("layernorm+residual fwd", sh, time_us([&] {
            return bj_cuda_layernorm_forward(out.p, mean.p, rstd.p, h.p, x.p, r.p, gamma.p,
                                             beta.p, N, C, 1e-12f, nullptr);
          }, 50),
          F * (4.0 * n + 2.0 * N + 2.0 * C));
      // the layer norm backward's kernels: BJ_LN_IMPL=v1 (previous), v2 (default), v2np (v2
      // without the next-row prefetch, 2 blocks per SM), v2l2 (v2 + L2 prefetch 2 rows ahead),
      // v3 (v2's row kernel + a one-round-trip partial sum, both launched as programmatic
      // dependents: PDL), v3a (v3's partial sum, plain launches), v3g (v3's two kernels in one
      // cooperative launch with a grid barrier between them), v3gp (v3g + PDL)
      for (const char* impl : {"v1", "v2", "v2np", "v2l2", "v3", "v3a"}) {
        setenv("BJ_LN_IMPL", impl, 1);
        row(std::string("layernorm bwd ") + impl, sh, time_us([&] {
              return bj_cuda_layernorm_backward(dh.p, dg.p, db.p, dout.p, h.p, mean.p, rstd.p,
                                                gamma.p, N, C, nullptr);
            }, 50),
            F * (3.0 * n + 2.0 * N + 3.0 * C));
      }
      unsetenv("BJ_LN_IMPL");
      // dropout + residual layer norm: fused vs the two ops (BERT's BertOutput, p = 0.1)
      const float p = 0.1f;
      const double fwd_b = F * (4.0 * n + 2.0 * N + 2.0 * C);  // y, residual, out, h
      const double bwd_b = F * (4.0 * n + 2.0 * N + 3.0 * C);  // dout, h, dh, dy
      const double tf = time_us([&] {
        return bj_cuda_dropout_layernorm_forward(out.p, nullptr, mean.p, rstd.p, h.p, x.p, r.p,
                                                 gamma.p, beta.p, N, C, 1e-12f, p, 7, 0, nullptr,
                                                 nullptr);
      }, 50);
      const double tfu = time_us([&] {
        const int rc = bj_cuda_dropout_forward(pre.p, x.p, (int64_t)n, p, 7, 0, nullptr, nullptr);
        return rc != BJ_OK ? rc
                           : bj_cuda_layernorm_forward(out.p, mean.p, rstd.p, h.p, pre.p, r.p,
                                                       gamma.p, beta.p, N, C, 1e-12f, nullptr);
      }, 50);
      const double tb = time_us([&] {
        return bj_cuda_dropout_layernorm_backward(dh.p, dpre.p, nullptr, dg.p, db.p, nullptr,
                                                  dout.p, h.p, mean.p, rstd.p, gamma.p, N, C, p, 7,
                                                  0, nullptr, nullptr);
      }, 50);
      const double tbu = time_us([&] {
        const int rc = bj_cuda_layernorm_backward(dh.p, dg.p, db.p, dout.p, h.p, mean.p, rstd.p,
                                                  gamma.p, N, C, nullptr);
        return rc != BJ_OK ? rc
                           : bj_cuda_dropout_backward(dpre.p, dh.p, (int64_t)n, p, 7, 0, nullptr,
                                                      nullptr);
      }, 50);
      row("dropout+LN fwd fused p=0.1", sh, tf, fwd_b);
      row("dropout+LN fwd 2 ops p=0.1", sh, tfu, fwd_b);
      row("dropout+LN bwd fused p=0.1", sh, tb, bwd_b);
      row("dropout+LN bwd 2 ops p=0.1", sh, tbu, bwd_b);
      // with the bf16 side output (out_low / dy_low / dpre_low) vs the op then to_bf16 (the GELU
      // backward rows with dbias)
      const double lb = 2.0 * n;  // the bf16 copy's bytes
      row("dropout+LN fwd +bf16", sh, time_us([&] {
            return bj_cuda_dropout_layernorm_forward(out.p, low, mean.p, rstd.p, h.p, x.p, r.p,
                                                     gamma.p, beta.p, N, C, 1e-12f, p, 7, 0,
                                                     nullptr, nullptr);
          }, 50),
          fwd_b + lb);
      row("dropout+LN fwd +to_bf16", sh, time_us([&] {
            const int rc = bj_cuda_dropout_layernorm_forward(out.p, nullptr, mean.p, rstd.p, h.p,
                                                             x.p, r.p, gamma.p, beta.p, N, C,
                                                             1e-12f, p, 7, 0, nullptr, nullptr);
            return rc != BJ_OK ? rc : bj_cuda_to_bf16(low, out.p, (int64_t)n, nullptr);
          }, 50),
          fwd_b + lb);
      row("dropout+LN bwd +bf16", sh, time_us([&] {
            return bj_cuda_dropout_layernorm_backward(dh.p, dpre.p, low, dg.p, db.p, nullptr,
                                                      dout.p, h.p, mean.p, rstd.p, gamma.p, N, C, p,
                                                      7, 0, nullptr, nullptr);
          }, 50),
          bwd_b + lb);
      row("dropout+LN bwd +to_bf16", sh, time_us([&] {
            const int rc = bj_cuda_dropout_layernorm_backward(dh.p, dpre.p, nullptr, dg.p, db.p,
                                                              nullptr, dout.p, h.p, mean.p, rstd.p,
                                                              gamma.p, N, C, p, 7, 0, nullptr,
                                                              nullptr);
            return rc != BJ_OK ? rc : bj_cuda_to_bf16(low, dpre.p, (int64_t)n, nullptr);
          }, 50),
          bwd_b + lb);
      if (C <= 768) {  // the hidden sizes (BertSelfOutput / BertOutput's LayerNorm)
        // with the dense layer's bias gradient (dbias_y: column sums of dy) in the same pass vs
        // the fused op then bias_backward on dy (GB/s of the fused op's bytes + dbias, both rows)
        const double bb = bwd_b + F * 2.0 * C;
        row("dropout+LN bwd fused +dbias", sh, time_us([&] {
              return bj_cuda_dropout_layernorm_backward(dh.p, dpre.p, nullptr, dg.p, db.p, bias.p,
                                                        dout.p, h.p, mean.p, rstd.p, gamma.p, N,
                                                        C, p, 7, 0, nullptr, nullptr);
            }, 50),
            bb);
        row("dropout+LN bwd +bias_bwd", sh, time_us([&] {
              const int rc = bj_cuda_dropout_layernorm_backward(
                  dh.p, dpre.p, nullptr, dg.p, db.p, nullptr, dout.p, h.p, mean.p, rstd.p,
                  gamma.p, N, C, p, 7, 0, nullptr, nullptr);
              return rc != BJ_OK ? rc : bj_cuda_bias_backward(bias.p, dpre.p, N, C, nullptr);
            }, 50),
            bb);
      }
      row("bias+gelu fwd", sh, time_us([&] {
            return bj_cuda_bias_gelu_forward(out.p, nullptr, pre.p, x.p, bias.p, N, C, nullptr);
          }, 50),
          F * (3.0 * n + C));
      row("bias+gelu fwd +bf16", sh, time_us([&] {
            return bj_cuda_bias_gelu_forward(out.p, low, pre.p, x.p, bias.p, N, C, nullptr);
          }, 50),
          F * (3.0 * n + C) + lb);
      row("bias+gelu fwd bf16 only", sh, time_us([&] {  // inference: out, pre NULL
            return bj_cuda_bias_gelu_forward(nullptr, low, nullptr, x.p, bias.p, N, C, nullptr);
          }, 50),
          F * (n + C) + lb);
      row("bias+gelu fwd +to_bf16", sh, time_us([&] {
            const int rc =
                bj_cuda_bias_gelu_forward(out.p, nullptr, pre.p, x.p, bias.p, N, C, nullptr);
            return rc != BJ_OK ? rc : bj_cuda_to_bf16(low, out.p, (int64_t)n, nullptr);
          }, 50),
          F * (3.0 * n + C) + lb);
      both("bias+gelu bwd (+dbias)", "bias_gelu_backward", sh, F * (3.0 * n + C), 50, [&] {
        return bj_cuda_bias_gelu_backward(dpre.p, nullptr, db.p, dout.p, pre.p, N, C, nullptr);
      });
      both("bias+gelu bwd +bf16", "bias_gelu_backward", sh, F * (3.0 * n + C) + lb, 50,
           [&] {
             return bj_cuda_bias_gelu_backward(dpre.p, low, db.p, dout.p, pre.p, N, C, nullptr);
           });
      row("bias+gelu bwd +to_bf16", sh, time_us([&] {
            const int rc =
                bj_cuda_bias_gelu_backward(dpre.p, nullptr, db.p, dout.p, pre.p, N, C, nullptr);
            return rc != BJ_OK ? rc : bj_cuda_to_bf16(low, dpre.p, (int64_t)n, nullptr);
          }, 50),
          F * (3.0 * n + C) + lb);
      both("bias+gelu bwd in place", "bias_gelu_backward", sh, F * (3.0 * n + C), 50, [&] {
        return bj_cuda_bias_gelu_backward(dh.p, nullptr, db.p, dh.p, pre.p, N, C, nullptr);
      });
      both("bias_backward", "bias_backward", sh, F * (1.0 * n + C), 50, [&] {
        return bj_cuda_bias_backward(db.p, dout.p, N, C, nullptr);
      });
      both("dropout fwd p=0.1", "dropout", sh, F * 2.0 * n, 50, [&] {
        return bj_cuda_dropout_forward(out.p, x.p, (int64_t)n, 0.1f, 1, 0, nullptr, nullptr);
      });
      both("dropout bwd p=0.1 in place", "dropout", sh, F * 2.0 * n, 50, [&] {
        return bj_cuda_dropout_backward(dh.p, dh.p, (int64_t)n, 0.1f, 1, 0, nullptr, nullptr);
      });
    }
  }

  // ---- embeddings backward (bert-base vocabulary) ----
  if (want("embeddings")) {
    const int B = 32, T = 128, C = 768, V = 30522, P = 512, TV = 2, N = B * T;
    Buf dwte((size_t)V * C), dwpe((size_t)P * C), dwtt((size_t)TV * C), dout((size_t)N * C);
    std::vector<int32_t> hid(N), htt(N);
    std::mt19937 g(5);
    std::uniform_int_distribution<int> idd(0, V - 1);
    for (int i = 0; i < N; ++i) {
      hid[i] = (i % T) > 100 ? 0 : idd(g);  // some padding tokens (id 0) repeat
      htt[i] = (i % T) > 60;
    }
    int32_t *ids = nullptr, *tt = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&ids), N * sizeof(int32_t));
    cudaMalloc(reinterpret_cast<void**>(&tt), N * sizeof(int32_t));
    cudaMemcpy(ids, hid.data(), N * sizeof(int32_t), cudaMemcpyHostToDevice);
    cudaMemcpy(tt, htt.data(), N * sizeof(int32_t), cudaMemcpyHostToDevice);
    both("embeddings bwd", "embeddings_backward", "B32 T128 C768 V30522", F * (3.0 * N * C), 20,
         [&] {
           return bj_cuda_embeddings_backward(dwte.p, dwpe.p, dwtt.p, dout.p, ids, tt, B, T, C, V,
                                              P, TV, nullptr);
         });
    // padding-heavy batch (SST-2-like: ~20 real tokens of 128, the rest id 0): one id owns most
    // rows, the case a one-owner-per-id kernel serializes
    std::vector<int32_t> hpad(N);
    for (int i = 0; i < N; ++i) hpad[i] = (i % T) < 20 ? idd(g) : 0;
    cudaMemcpy(ids, hpad.data(), N * sizeof(int32_t), cudaMemcpyHostToDevice);
    both("embeddings bwd", "embeddings_backward", "B32 T128 C768 V30522 pad 84%",
         F * (3.0 * N * C), 20, [&] {
           return bj_cuda_embeddings_backward(dwte.p, dwpe.p, dwtt.p, dout.p, ids, tt, B, T, C, V,
                                              P, TV, nullptr);
         });
    cudaFree(ids);
    cudaFree(tt);
  }

  // ---- optimizer over bert-base's 110M parameters ----
  if (want("optimizer")) {
    const int64_t n = 110000000;
    Buf p(n), g(n, -0.01f, 0.01f), m(n, -0.001f, 0.001f), v(n, 0.0f, 1e-5f), gs(1, 0.5f, 0.5f),
        out(1);
    row("adamw", "n=110M, grad_scale", time_us([&] {
          return bj_cuda_adamw(p.p, nullptr, g.p, m.p, v.p, n, 0, n, 1e-5f, 0.9f, 0.999f, 1e-8f,
                               0.01f, 10, nullptr, gs.p, nullptr);
        }, 10),
        F * 7.0 * n);
    row("sum_squares", "n=110M", time_us([&] {
          return bj_cuda_sum_squares(out.p, g.p, n, nullptr);
        }, 10),
        F * 1.0 * n);
    row("scale_by", "n=110M", time_us([&] {
          return bj_cuda_scale_by(g.p, n, gs.p, nullptr);
        }, 10),
        F * 2.0 * n);
  }
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    std::printf("CUDA error: %s\n", cudaGetErrorString(e));
    return 1;
  }
  return g_failed ? 1 : 0;
}
