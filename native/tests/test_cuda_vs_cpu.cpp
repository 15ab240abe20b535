// Tier-2 test: every bj_cuda_<op> against bj_cpu_<op> on fresh random inputs, at several shapes
// (odd sizes, T = 1, B = 1, fully padded rows, head dims 32/64/128, dropout p = 0.1, aliasing).
// Compared by relative norm ||cuda - cpu|| / ||cpu|| (forward <= 1e-5, backward <= 1e-4); dropout
// masks and Philox uniforms must be bit-identical. One line per check, then "N passed, M failed".
// Exit status: 0 all passed, 1 a failure, 77 no CUDA device (ctest counts it as skipped).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bertj.h"
#include "bertj_bf16.h"

namespace {
int g_pass = 0, g_fail = 0;
std::mt19937_64 g_rng(20261126);

constexpr double kFwd = 1e-5, kBwd = 1e-4;

std::vector<float> randv(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}
std::vector<float> randn(size_t n, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}
std::vector<int32_t> randi(size_t n, int lo, int hi) {  // [lo, hi)
  std::uniform_int_distribution<int> d(lo, hi - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}

// A device copy of a host vector; `pad` leading elements shift the pointer off 16-byte alignment.
template <class T>
struct Dev {
  T* base = nullptr;
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t n_, int pad = 0) : n(n_) {
    if (cudaMalloc(reinterpret_cast<void**>(&base), (n + pad + 1) * sizeof(T)) != cudaSuccess) {
      std::fprintf(stderr, "cudaMalloc failed\n");
      std::exit(1);
    }
    p = base + pad;
  }
  explicit Dev(const std::vector<T>& h, int pad = 0) : Dev(h.size(), pad) { put(h); }
  Dev(const Dev&) = delete;
  ~Dev() { cudaFree(base); }
  void put(const std::vector<T>& h) {
    cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<T> get() const {
    std::vector<T> h(n);
    cudaDeviceSynchronize();
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
};

// ||a - b|| / ||b|| (absolute when ||b|| = 0); NaN when a NaN or Inf appears in either.
// ||a[off + k*stride + j]|| over j < width (a strided column block), in double.
double norm_of(const std::vector<float>& a, size_t off, size_t stride, size_t width) {
  double s = 0.0;
  for (size_t r = off; r < a.size(); r += stride)
    for (size_t j = 0; j < width && r + j < a.size(); ++j) s += (double)a[r + j] * a[r + j];
  return std::sqrt(s);
}

double rel(const std::vector<float>& a, const std::vector<float>& b, size_t off = 0,
           size_t len = SIZE_MAX, size_t stride = 0, size_t width = 0) {
  double num = 0.0, den = 0.0;
  auto add = [&](size_t i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
      num = NAN;
      return;
    }
    const double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  };
  if (a.size() != b.size()) return NAN;
  if (stride == 0) {
    const size_t end = len == SIZE_MAX ? a.size() : off + len;
    for (size_t i = off; i < end; ++i) add(i);
  } else {  // columns [off, off + width) of rows of `stride`
    for (size_t r = 0; r * stride < a.size(); ++r)
      for (size_t c = 0; c < width; ++c) add(r * stride + off + c);
  }
  if (std::isnan(num)) return NAN;
  return den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
}

void report(const std::string& name, const std::string& shape, double r, double tol) {
  const bool ok = !std::isnan(r) && r <= tol;
  (ok ? g_pass : g_fail)++;
  std::printf("%-30s %-44s rel %.2e (tol %.0e)  %s\n", name.c_str(), shape.c_str(), r, tol,
              ok ? "PASS" : "FAIL");
}
void report_bits(const std::string& name, const std::string& shape, bool same) {
  (same ? g_pass : g_fail)++;
  std::printf("%-30s %-44s %-23s  %s\n", name.c_str(), shape.c_str(),
              same ? "bit-identical" : "BITS DIFFER", same ? "PASS" : "FAIL");
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}
// A status check: counts as a check, prints the backend's message on failure.
bool ok_rc(const std::string& name, const std::string& shape, int rc, int want, bool cuda) {
  if (rc == want) return true;
  g_fail++;
  std::printf("%-30s %-44s rc %d, want %d: %s  FAIL\n", name.c_str(), shape.c_str(), rc, want,
              cuda ? bj_cuda_last_error() : bj_cpu_last_error());
  return false;
}
#define CPU_OK(name, shape, call) ok_rc(name, shape, (call), BJ_OK, false)
#define GPU_OK(name, shape, call) ok_rc(name, shape, (call), BJ_OK, true)

// bf16 bits of x by the CPU to_bf16 (bit-identical to the CUDA one: test_memory).
std::vector<uint16_t> bf16_of(const std::vector<float>& x) {
  std::vector<uint16_t> r(x.size());
  if (!x.empty()) bj_cpu_to_bf16(r.data(), x.data(), (int64_t)x.size(), nullptr);
  return r;
}
// bf16 bits widened to fp32 (exact).
std::vector<float> widen(const std::vector<uint16_t>& x) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const uint32_t u = (uint32_t)x[i] << 16;
    std::memcpy(&r[i], &u, 4);
  }
  return r;
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// An argument error: the call returns BJ_ERR_INVALID and the message names `op`.
void expect_invalid(const std::string& name, int rc, bool cuda, const char* op) {
  const char* msg = cuda ? bj_cuda_last_error() : bj_cpu_last_error();
  const bool ok = rc == BJ_ERR_INVALID && std::strstr(msg, op) != nullptr;
  (ok ? g_pass : g_fail)++;
  std::printf("%-30s %-44s rc %d: %s  %s\n", name.c_str(), cuda ? "cuda" : "cpu", rc, msg,
              ok ? "PASS" : "FAIL");
}

// A bf16 side output (out_low, dy_low, dpre_low): CUDA's is bit for bit to_bf16 of CUDA's fp32
// output (glow, gf), and the same bits as the CPU's (clow, of cf) wherever the two fp32 outputs
// have the same bits; where they differ (a few 1e-7 relative) the bf16 may be a neighbour, within
// |gf - cf| + 2^-8 (|gf| + |cf|) (each rounding moves a value by at most 2^-8 of it). (The CPU's
// own clow == to_bf16(cf) is checked where it is computed.)
void report_low(const std::string& name, const std::string& shape,
                const std::vector<uint16_t>& glow, const std::vector<float>& gf,
                const std::vector<uint16_t>& clow, const std::vector<float>& cf) {
  report_bits(name + " cuda=to_bf16", shape, same_bits(glow, bf16_of(gf)));
  bool ok = glow.size() == clow.size() && gf.size() == cf.size() && gf.size() == glow.size();
  size_t f32_differ = 0, bf16_differ = 0;
  for (size_t i = 0; ok && i < gf.size(); ++i) {
    if (glow[i] == clow[i]) continue;
    ++bf16_differ;
    if (std::memcmp(&gf[i], &cf[i], sizeof(float)) == 0) {
      ok = false;  // the same fp32 value, different bf16
      break;
    }
    const double a = bj_bf16_bits_to_f32(glow[i]), b = bj_bf16_bits_to_f32(clow[i]);
    const double bound = std::fabs((double)gf[i] - cf[i]) +
                         std::ldexp(std::fabs((double)gf[i]) + std::fabs((double)cf[i]), -8);
    if (!(std::fabs(a - b) <= bound)) ok = false;
  }
  for (size_t i = 0; i < gf.size() && i < cf.size(); ++i)
    if (std::memcmp(&gf[i], &cf[i], sizeof(float)) != 0) ++f32_differ;
  (ok ? g_pass : g_fail)++;
  std::printf("%-30s %-44s %zu of %zu f32 differ, %zu bf16  %s\n", (name + " cuda~cpu").c_str(),
              shape.c_str(), f32_differ, gf.size(), bf16_differ, ok ? "PASS" : "FAIL");
}

// ------------------------------------------------------------------------------------------
void test_memory() {
  for (int64_t n : {1LL, 7LL, 1027LL, (1LL << 20) + 3}) {
    for (int pad : {0, 1}) {
      const std::string sh = fmt("n=%lld pad=%d", (long long)n, pad);
      {
        std::vector<float> c(n);
        Dev<float> g(n, pad);
        CPU_OK("fill", sh, bj_cpu_fill(c.data(), n, 3.25f, nullptr));
        if (GPU_OK("fill", sh, bj_cuda_fill(g.p, n, 3.25f, nullptr)))
          report_bits("fill", sh, same_bits(g.get(), c));
      }
      {
        auto y = randv(n), x = randv(n);
        Dev<float> gy(y, pad), gx(x, pad);
        CPU_OK("axpy", sh, bj_cpu_axpy(y.data(), x.data(), n, -0.7f, nullptr));
        if (GPU_OK("axpy", sh, bj_cuda_axpy(gy.p, gx.p, n, -0.7f, nullptr)))
          report("axpy", sh, rel(gy.get(), y), kFwd);
      }
      {
        auto x = randv(n);
        std::vector<float> s = {0.37f};
        Dev<float> gx(x, pad), gs(s);
        CPU_OK("scale_by", sh, bj_cpu_scale_by(x.data(), n, s.data(), nullptr));
        if (GPU_OK("scale_by", sh, bj_cuda_scale_by(gx.p, n, gs.p, nullptr)))
          report("scale_by", sh, rel(gx.get(), x), kFwd);
      }
      {
        // bf16 conversions: bit-identical on both backends, specials included.
        auto x = randv(n);
        const float special[] = {0.f, -0.f, INFINITY, -INFINITY, NAN, 3.0e38f, 1.0e-40f,
                                 1.00390625f /* tie: 1 + 2^-8 */, 1.01171875f /* tie, odd */};
        for (size_t i = 0; i < sizeof special / sizeof special[0] && i < x.size(); ++i)
          x[i] = special[i];
        std::vector<uint16_t> c(n);
        Dev<float> gx(x, pad);
        Dev<uint16_t> g(n, pad);
        CPU_OK("to_bf16", sh, bj_cpu_to_bf16(c.data(), x.data(), n, nullptr));
        if (GPU_OK("to_bf16", sh, bj_cuda_to_bf16(g.p, gx.p, n, nullptr)))
          report_bits("to_bf16", sh, g.get() == c);
        std::vector<float> back(n);
        Dev<float> gback(n, pad);
        CPU_OK("from_bf16", sh, bj_cpu_from_bf16(back.data(), c.data(), n, nullptr));
        if (GPU_OK("from_bf16", sh, bj_cuda_from_bf16(gback.p, g.p, n, nullptr)))
          report_bits("from_bf16", sh, same_bits(gback.get(), back));
      }
    }
  }
}

// gather_rows (padding removal): bit-identical to the CPU (a copy), idx -1 rows zero (also on an
// output that held garbage), unaligned pointers and C % 4 != 0 take the scalar path; the inverse
// index scatters back; an index >= n_in: CPU BJ_ERR_INVALID writing nothing, CUDA NaN rows (the
// out-of-range row is not read) and the other rows right; out overlapping in: both reject.
void test_gather() {
  struct S {
    int M, C, n_in, pad;
  };
  const bool small = std::getenv("BJ_TEST_SMALL") != nullptr;
  std::vector<S> shapes = {S{1, 1, 1, 0}, S{5, 3, 7, 0}, S{9, 8, 4, 0}, S{9, 8, 4, 1},
                           S{33, 36, 40, 0}, S{17, 13, 20, 1}};
  if (!small) {
    shapes.push_back(S{300, 768, 512, 0});
    shapes.push_back(S{1000, 1024, 1200, 1});
  }
  for (S s : shapes) {
    const std::string sh = fmt("M=%d C=%d n_in=%d pad=%d", s.M, s.C, s.n_in, s.pad);
    const size_t out_n = (size_t)s.M * s.C;
    auto in = randv((size_t)s.n_in * s.C);
    auto idx = randi(s.M, -1, s.n_in);
    idx[0] = -1;
    if (s.M > 1) idx[s.M - 1] = s.n_in - 1;
    std::vector<float> c(out_n, 7.0f);
    Dev<float> gin(in, s.pad), gout(std::vector<float>(out_n, 7.0f), s.pad);
    Dev<int32_t> gidx(idx);
    CPU_OK("gather_rows", sh,
           bj_cpu_gather_rows(c.data(), in.data(), idx.data(), s.M, s.C, s.n_in, nullptr));
    if (GPU_OK("gather_rows", sh,
               bj_cuda_gather_rows(gout.p, gin.p, gidx.p, s.M, s.C, s.n_in, nullptr))) {
      const auto g = gout.get();
      report_bits("gather_rows", sh, same_bits(g, c));
      bool zero = true, copied = true;
      for (int r = 0; r < s.M; ++r)
        for (int k = 0; k < s.C; ++k) {
          const float v = g[(size_t)r * s.C + k];
          if (idx[r] < 0) zero = zero && v == 0.0f && !std::signbit(v);
          else copied = copied && v == in[(size_t)idx[r] * s.C + k];
        }
      report_bits("gather_rows -1 rows zero", sh, zero);
      report_bits("gather_rows rows = in[idx]", sh, copied);
    }
  }
  {
    // scatter back with the inverse index: padded (B*T) rows from packed (N) rows, -1 = pad
    const int B = 3, T = 11, C = 20;
    std::vector<int> len = {11, 4, 1};
    std::vector<int32_t> fwd, inv(B * T, -1);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < len[b]; ++t) {
        inv[b * T + t] = (int32_t)fwd.size();
        fwd.push_back(b * T + t);
      }
    const int N = (int)fwd.size();
    auto padded = randv((size_t)B * T * C);
    Dev<float> gpadded(padded), gpacked((size_t)N * C), gback((size_t)B * T * C);
    Dev<int32_t> gfwd(fwd), ginv(inv);
    const std::string sh = fmt("B=%d T=%d C=%d N=%d", B, T, C, N);
    if (GPU_OK("gather_rows pack", sh,
               bj_cuda_gather_rows(gpacked.p, gpadded.p, gfwd.p, N, C, B * T, nullptr)) &&
        GPU_OK("gather_rows unpack", sh,
               bj_cuda_gather_rows(gback.p, gpacked.p, ginv.p, B * T, C, N, nullptr))) {
      std::vector<float> want(padded);
      for (int r = 0; r < B * T; ++r)
        if (inv[r] < 0)
          for (int k = 0; k < C; ++k) want[(size_t)r * C + k] = 0.0f;
      report_bits("gather_rows pack + unpack", sh, same_bits(gback.get(), want));
    }
  }
  {
    const int M = 6, C = 8, n_in = 5;
    const std::string sh = fmt("M=%d C=%d n_in=%d idx[2]=n_in", M, C, n_in);
    auto in = randv((size_t)n_in * C);
    std::vector<int32_t> idx = {0, -1, n_in, 4, 1000000, 2};
    std::vector<float> c(M * C, 7.0f);
    const int rc = bj_cpu_gather_rows(c.data(), in.data(), idx.data(), M, C, n_in, nullptr);
    report_bits("gather_rows bad index: cpu rejects", sh,
                rc == BJ_ERR_INVALID && same_bits(c, std::vector<float>(M * C, 7.0f)));
    for (int pad : {0, 1}) {
      Dev<float> gin(in, pad), gout((size_t)M * C, pad);
      Dev<int32_t> gidx(idx);
      const std::string shp = sh + fmt(" pad=%d", pad);
      if (GPU_OK("gather_rows bad index (cuda)", shp,
                 bj_cuda_gather_rows(gout.p, gin.p, gidx.p, M, C, n_in, nullptr))) {
        const auto g = gout.get();
        bool ok = true;
        for (int r = 0; r < M; ++r)
          for (int k = 0; k < C; ++k) {
            const float v = g[(size_t)r * C + k];
            if (idx[r] >= n_in) ok = ok && std::isnan(v);
            else if (idx[r] < 0) ok = ok && v == 0.0f;
            else ok = ok && v == in[(size_t)idx[r] * C + k];
          }
        report_bits("gather_rows bad index: cuda NaN rows", shp, ok);
      }
    }
  }
  {
    // out overlapping in (one buffer): both reject before any launch
    const int M = 4, C = 4, n_in = 4;
    std::vector<float> h(32, 1.0f);
    std::vector<int32_t> idx = {0, 1, 2, 3};
    Dev<float> g(h);
    Dev<int32_t> gidx(idx);
    const std::string sh = "out = in + 2 rows";
    const int rc_cpu = bj_cpu_gather_rows(h.data() + 8, h.data(), idx.data(), M, C, n_in, nullptr);
    const int rc_gpu = bj_cuda_gather_rows(g.p + 8, g.p, gidx.p, M, C, n_in, nullptr);
    report_bits("gather_rows overlap rejected", sh,
                rc_cpu == BJ_ERR_INVALID && rc_gpu == BJ_ERR_INVALID);
  }
}

void test_embeddings() {
  struct S {
    int B, T, C, V, P, TV;
    bool tt, dwtt;
    int pad = 0;  // 1: ids mostly 0 (long runs, as padding makes), ids 0 and V-1 at the ends
  };
  // The v2 backward cuts an id's rows into chunks of 32: V = 2 or pad = 1 give runs of hundreds
  // of rows (several chunks); TV = 5 with dwtt and odd C take the other paths.
  for (S s : {S{2, 5, 13, 11, 8, 2, true, true}, S{3, 64, 768, 100, 128, 2, false, true},
              S{1, 1, 8, 3, 4, 1, true, false}, S{4, 33, 384, 7, 40, 3, true, true},
              S{8, 64, 64, 2, 64, 2, true, true}, S{3, 50, 13, 2, 64, 2, true, true},
              S{4, 40, 36, 30522, 512, 2, true, true, 1}, S{2, 7, 12, 9, 8, 5, true, true},
              S{5, 33, 20, 17, 40, 4, true, true, 1}, S{2, 100, 8, 1, 100, 1, false, false},
              S{16, 130, 8, 50, 130, 2, true, true, 1}}) {
    const std::string sh = fmt("B=%d T=%d C=%d V=%d TV=%d tt=%d%s", s.B, s.T, s.C, s.V, s.TV,
                               s.tt, s.pad ? " pad" : "");
    const int N = s.B * s.T;
    auto ids = randi(N, 0, s.V);
    if (s.pad) {
      for (int i = 0; i < N; ++i)
        if (i % 4 != 0) ids[i] = 0;
      ids[0] = s.V - 1;
      ids[N - 1] = s.V - 1;
      ids[N / 2] = s.V - 1;
    }
    auto tt = s.tt ? randi(N, 0, s.TV) : std::vector<int32_t>();
    auto wte = randv((size_t)s.V * s.C), wpe = randv((size_t)s.P * s.C),
         wtt = randv((size_t)s.TV * s.C);
    Dev<int32_t> gids(ids), gtt(s.tt ? tt : std::vector<int32_t>{0});
    Dev<float> gwte(wte), gwpe(wpe), gwtt(wtt);
    const int32_t* ctt = s.tt ? tt.data() : nullptr;
    const int32_t* dtt = s.tt ? gtt.p : nullptr;
    std::vector<float> out((size_t)N * s.C);
    Dev<float> gout(out.size());
    CPU_OK("embeddings_forward", sh,
           bj_cpu_embeddings_forward(out.data(), ids.data(), ctt, wte.data(), wpe.data(),
                                     wtt.data(), s.B, s.T, s.C, s.V, s.P, s.TV, nullptr));
    if (GPU_OK("embeddings_forward", sh,
               bj_cuda_embeddings_forward(gout.p, gids.p, dtt, gwte.p, gwpe.p, gwtt.p, s.B, s.T,
                                          s.C, s.V, s.P, s.TV, nullptr)))
      report("embeddings_forward", sh, rel(gout.get(), out), kFwd);

    auto dout = randv(out.size());
    auto dwte = randv(wte.size()), dwpe = randv(wpe.size()), dwtt = randv(wtt.size());
    Dev<float> gdout(dout), gdwte(dwte), gdwpe(dwpe), gdwtt(dwtt);
    Dev<float> rdwte(dwte), rdwpe(dwpe), rdwtt(dwtt);  // for the rerun (same bits expected)
    CPU_OK("embeddings_backward", sh,
           bj_cpu_embeddings_backward(dwte.data(), dwpe.data(), s.dwtt ? dwtt.data() : nullptr,
                                      dout.data(), ids.data(), ctt, s.B, s.T, s.C, s.V, s.P, s.TV,
                                      nullptr));
    if (GPU_OK("embeddings_backward", sh,
               bj_cuda_embeddings_backward(gdwte.p, gdwpe.p, s.dwtt ? gdwtt.p : nullptr, gdout.p,
                                           gids.p, dtt, s.B, s.T, s.C, s.V, s.P, s.TV,
                                           nullptr))) {
      report("embeddings_backward dwte", sh, rel(gdwte.get(), dwte), kBwd);
      report("embeddings_backward dwpe", sh, rel(gdwpe.get(), dwpe), kBwd);
      report("embeddings_backward dwtt", sh, rel(gdwtt.get(), dwtt), kBwd);
      if (GPU_OK("embeddings_backward", sh,
                 bj_cuda_embeddings_backward(rdwte.p, rdwpe.p, s.dwtt ? rdwtt.p : nullptr,
                                             gdout.p, gids.p, dtt, s.B, s.T, s.C, s.V, s.P, s.TV,
                                             nullptr)))
        report_bits("embeddings_backward (rerun)", sh,
                    same_bits(rdwte.get(), gdwte.get()) && same_bits(rdwpe.get(), gdwpe.get()) &&
                        same_bits(rdwtt.get(), gdwtt.get()));
    }
  }
}

void test_layernorm() {
  struct S {
    int N, C;
    bool res, hsave, alias;
    int pad;
  };
  for (S s : {S{1, 7, true, true, false, 0}, S{37, 768, true, true, false, 0},
              S{64, 1000, false, false, false, 0}, S{19, 1536, true, true, true, 0},
              S{8, 384, true, true, true, 0}, S{5, 768, true, true, false, 1},
              S{70, 3072, true, true, false, 0}, S{9, 6000, true, false, false, 0},
              S{300, 256, false, true, true, 0}}) {
    const std::string sh = fmt("N=%d C=%d res=%d hsave=%d alias=%d pad=%d", s.N, s.C, s.res,
                               s.hsave, s.alias, s.pad);
    const size_t n = (size_t)s.N * s.C;
    auto x = randn(n, 2.0f), r = randn(n), gamma = randv(s.C, 0.5f, 1.5f), beta = randv(s.C);
    for (size_t i = 0; i < n; ++i) x[i] += 0.5f;  // a mean to remove
    Dev<float> gx(x, s.pad), gr(r, s.pad), gg(gamma), gb(beta), gout(n, s.pad), gmean(s.N),
        grstd(s.N), gh(n, s.pad);
    std::vector<float> out(n), mean(s.N), rstd(s.N), h(n), xc = x;
    float* cout_ = s.alias ? xc.data() : out.data();
    float* gout_ = s.alias ? gx.p : gout.p;
    CPU_OK("layernorm_forward", sh,
           bj_cpu_layernorm_forward(cout_, mean.data(), rstd.data(), s.hsave ? h.data() : nullptr,
                                    xc.data(), s.res ? r.data() : nullptr, gamma.data(),
                                    beta.data(), s.N, s.C, 1e-12f, nullptr));
    if (GPU_OK("layernorm_forward", sh,
               bj_cuda_layernorm_forward(gout_, gmean.p, grstd.p, s.hsave ? gh.p : nullptr, gx.p,
                                         s.res ? gr.p : nullptr, gg.p, gb.p, s.N, s.C, 1e-12f,
                                         nullptr))) {
      report("layernorm_forward out", sh, rel(s.alias ? gx.get() : gout.get(), std::vector<float>(cout_, cout_ + n)), kFwd);
      report("layernorm_forward mean", sh, rel(gmean.get(), mean), kFwd);
      report("layernorm_forward rstd", sh, rel(grstd.get(), rstd), kFwd);
      if (s.hsave) report("layernorm_forward hsave", sh, rel(gh.get(), h), kFwd);
    }
    // backward from the CPU's saved statistics
    if (!s.hsave) {
      for (size_t i = 0; i < n; ++i) h[i] = s.res ? x[i] + r[i] : x[i];
    }
    auto dout = randv(n), dgamma = randv(s.C), dbeta = randv(s.C);
    std::vector<float> dh(n);
    Dev<float> gdout(dout, s.pad), gdh(n, s.pad), gdg(dgamma), gdb(dbeta), gh2(h, s.pad),
        gmean2(mean), grstd2(rstd);
    float* cdh = s.alias ? dout.data() : dh.data();
    float* gdh_ = s.alias ? gdout.p : gdh.p;
    CPU_OK("layernorm_backward", sh,
           bj_cpu_layernorm_backward(cdh, dgamma.data(), dbeta.data(), dout.data(), h.data(),
                                     mean.data(), rstd.data(), gamma.data(), s.N, s.C, nullptr));
    if (GPU_OK("layernorm_backward", sh,
               bj_cuda_layernorm_backward(gdh_, gdg.p, gdb.p, gdout.p, gh2.p, gmean2.p, grstd2.p,
                                          gg.p, s.N, s.C, nullptr))) {
      report("layernorm_backward dh", sh,
             rel(s.alias ? gdout.get() : gdh.get(), std::vector<float>(cdh, cdh + n)), kBwd);
      report("layernorm_backward dgamma", sh, rel(gdg.get(), dgamma), kBwd);
      report("layernorm_backward dbeta", sh, rel(gdb.get(), dbeta), kBwd);
      if (!s.alias) {  // deterministic: the same call again adds the same bits
        const auto g1 = gdg.get();
        Dev<float> gdg2(g1);
        if (GPU_OK("layernorm_backward", sh,
                   bj_cuda_layernorm_backward(gdh_, gdg.p, gdb.p, gdout.p, gh2.p, gmean2.p,
                                              grstd2.p, gg.p, s.N, s.C, nullptr)) &&
            GPU_OK("layernorm_backward", sh,
                   bj_cuda_layernorm_backward(gdh_, gdg2.p, gdb.p, gdout.p, gh2.p, gmean2.p,
                                              grstd2.p, gg.p, s.N, s.C, nullptr)))
          report_bits("layernorm_backward (rerun)", sh, same_bits(gdg.get(), gdg2.get()));
      }
    }
  }
}

// dropout_layernorm_{forward,backward}: CUDA vs CPU, and on each backend bit-identical to the
// unfused dropout_forward + layernorm_forward (layernorm_backward + dropout_backward). Also the
// layer norm backward's v1 kernel (BJ_LN_IMPL=v1) against the default v2, and the bf16 side
// outputs out_low / dy_low (to_bf16 of out / dy; the fp32 outputs unchanged by asking for them),
// every other shape with a low pointer off 8-byte alignment (scalar bf16 stores), and the
// backward's dbias_y (+= column sums of dy, from a nonzero start: bias_backward of dy; the other
// outputs unchanged by asking for it) on every BJ_LN_IMPL variant.
void test_dropout_layernorm() {
  struct S {
    int N, C;
    float p;
    bool res, alias;
    int pad;
  };
  for (S s : {S{37, 768, 0.1f, true, false, 0}, S{5, 13, 0.5f, true, false, 0},
              S{64, 384, 0.1f, true, true, 0}, S{70, 3072, 0.1f, true, false, 0},
              S{19, 1536, 0.0f, true, false, 0}, S{9, 768, 0.1f, false, false, 1},
              S{300, 256, 0.3f, true, true, 0}, S{3, 6000, 0.1f, true, false, 0}}) {
    static int shape_no = 0;
    const int lowpad = shape_no++ % 2;  // uint16 elements before the bf16 side outputs
    const std::string sh = fmt("N=%d C=%d p=%.1f res=%d alias=%d pad=%d", s.N, s.C, s.p, s.res,
                               s.alias, s.pad);
    const size_t n = (size_t)s.N * s.C;
    const uint64_t seed = 0x5EEDULL + s.C, offset = 1000003ULL * s.N;
    auto y = randn(n, 2.0f), r = randn(n), gamma = randv(s.C, 0.5f, 1.5f), beta = randv(s.C);
    const float* cres = s.res ? r.data() : nullptr;
    // CPU fused and unfused
    std::vector<float> out(n), mean(s.N), rstd(s.N), h(n), yc = y;
    float* co = s.alias ? yc.data() : out.data();
    CPU_OK("dropout_layernorm_forward", sh,
           bj_cpu_dropout_layernorm_forward(co, nullptr, mean.data(), rstd.data(), h.data(),
                                            yc.data(), cres, gamma.data(), beta.data(), s.N, s.C,
                                            1e-12f, s.p, seed, offset, nullptr, nullptr));
    std::vector<float> fused(co, co + n);
    // with out_low: the same fp32 outputs, out_low = to_bf16(out)
    std::vector<uint16_t> clow(n);
    {
      std::vector<float> o2(n), m2(s.N), r2(s.N), h2(n), y2 = y;
      float* co2 = s.alias ? y2.data() : o2.data();
      CPU_OK("dropout_layernorm_forward (out_low)", sh,
             bj_cpu_dropout_layernorm_forward(co2, clow.data(), m2.data(), r2.data(), h2.data(),
                                              y2.data(), cres, gamma.data(), beta.data(), s.N,
                                              s.C, 1e-12f, s.p, seed, offset, nullptr, nullptr));
      report_bits("dropout_layernorm_fwd cpu out_low", sh,
                  same_bits(std::vector<float>(co2, co2 + n), fused) && same_bits(m2, mean) &&
                      same_bits(r2, rstd) && same_bits(h2, h) && same_bits(clow, bf16_of(fused)));
    }
    std::vector<float> u_out(n), u_mean(s.N), u_rstd(s.N), u_h(n), yd(n);
    CPU_OK("dropout_forward", sh,
           bj_cpu_dropout_forward(yd.data(), y.data(), (int64_t)n, s.p, seed, offset, nullptr,
                                  nullptr));
    CPU_OK("layernorm_forward", sh,
           bj_cpu_layernorm_forward(u_out.data(), u_mean.data(), u_rstd.data(), u_h.data(),
                                    yd.data(), cres, gamma.data(), beta.data(), s.N, s.C, 1e-12f,
                                    nullptr));
    report_bits("dropout_layernorm_fwd cpu=unfused", sh,
                same_bits(fused, u_out) && same_bits(h, u_h) && same_bits(rstd, u_rstd));
    // CUDA fused vs CPU, and vs CUDA unfused
    Dev<float> gy(y, s.pad), gr(r, s.pad), gg(gamma), gb(beta), gout(n, s.pad), gmean(s.N),
        grstd(s.N), gh(n, s.pad);
    float* go = s.alias ? gy.p : gout.p;
    if (GPU_OK("dropout_layernorm_forward", sh,
               bj_cuda_dropout_layernorm_forward(go, nullptr, gmean.p, grstd.p, gh.p, gy.p,
                                                 s.res ? gr.p : nullptr, gg.p, gb.p, s.N, s.C,
                                                 1e-12f, s.p, seed, offset, nullptr, nullptr))) {
      const auto gfused = s.alias ? gy.get() : gout.get();
      report("dropout_layernorm_fwd out", sh, rel(gfused, fused), kFwd);
      report("dropout_layernorm_fwd rstd", sh, rel(grstd.get(), rstd), kFwd);
      report_bits("dropout_layernorm_fwd h", sh, same_bits(gh.get(), h));
      // with out_low: the same fp32 outputs, out_low = to_bf16(out)
      {
        Dev<float> gy5(y, s.pad), go5(n, s.pad), gm5(s.N), gs5(s.N), gh5(n, s.pad);
        Dev<uint16_t> glow(n, lowpad);
        float* go5_ = s.alias ? gy5.p : go5.p;
        if (GPU_OK("dropout_layernorm_forward (out_low)", sh,
                   bj_cuda_dropout_layernorm_forward(go5_, glow.p, gm5.p, gs5.p, gh5.p, gy5.p,
                                                     s.res ? gr.p : nullptr, gg.p, gb.p, s.N,
                                                     s.C, 1e-12f, s.p, seed, offset, nullptr,
                                                     nullptr))) {
          const auto o5 = s.alias ? gy5.get() : go5.get();
          report_bits("dropout_layernorm_fwd out_low f32", sh + fmt(" lowpad=%d", lowpad),
                      same_bits(o5, gfused) && same_bits(gm5.get(), gmean.get()) &&
                          same_bits(gs5.get(), grstd.get()) && same_bits(gh5.get(), gh.get()));
          report_low("dropout_layernorm_fwd out_low", sh + fmt(" lowpad=%d", lowpad), glow.get(),
                     o5, clow, fused);
        }
      }
      Dev<float> gy2(y, s.pad), gd(n, s.pad), go2(n, s.pad), gm2(s.N), gs2(s.N), gh2(n, s.pad);
      if (GPU_OK("dropout_forward", sh,
                 bj_cuda_dropout_forward(gd.p, gy2.p, (int64_t)n, s.p, seed, offset, nullptr,
                                         nullptr)) &&
          GPU_OK("layernorm_forward", sh,
                 bj_cuda_layernorm_forward(go2.p, gm2.p, gs2.p, gh2.p, gd.p,
                                           s.res ? gr.p : nullptr, gg.p, gb.p, s.N, s.C, 1e-12f,
                                           nullptr)))
        report_bits("dropout_layernorm_fwd cuda=unfused", sh,
                    same_bits(gfused, go2.get()) && same_bits(gh.get(), gh2.get()) &&
                        same_bits(grstd.get(), gs2.get()));
    }
    // backward from the CPU's saved h, mean, rstd
    auto dout = randv(n), dg0 = randv(s.C), db0 = randv(s.C);
    std::vector<float> dh(n), dy(n), dg = dg0, db = db0, doutc = dout;
    float* cdh = s.alias ? doutc.data() : dh.data();  // alias: dh aliases dout
    CPU_OK("dropout_layernorm_backward", sh,
           bj_cpu_dropout_layernorm_backward(cdh, dy.data(), nullptr, dg.data(), db.data(),
                                             nullptr, doutc.data(), h.data(), mean.data(),
                                             rstd.data(), gamma.data(), s.N, s.C, s.p, seed,
                                             offset, nullptr, nullptr));
    std::vector<float> cdhv(cdh, cdh + n);
    // with dy_low: the same fp32 outputs, dy_low = to_bf16(dy)
    std::vector<uint16_t> cylow(n);
    {
      std::vector<float> dh2(n), dy2(n), dg2 = dg0, db2 = db0, dout2 = dout;
      float* cdh2 = s.alias ? dout2.data() : dh2.data();
      CPU_OK("dropout_layernorm_backward (dy_low)", sh,
             bj_cpu_dropout_layernorm_backward(cdh2, dy2.data(), cylow.data(), dg2.data(),
                                               db2.data(), nullptr, dout2.data(), h.data(),
                                               mean.data(), rstd.data(), gamma.data(), s.N, s.C,
                                               s.p, seed, offset, nullptr, nullptr));
      report_bits("dropout_layernorm_bwd cpu dy_low", sh,
                  same_bits(std::vector<float>(cdh2, cdh2 + n), cdhv) && same_bits(dy2, dy) &&
                      same_bits(dg2, dg) && same_bits(db2, db) && same_bits(cylow, bf16_of(dy)));
    }
    // with dbias_y from a nonzero start ("+="): the same other outputs, dbias_y = bias_backward of
    // dy (the same bits on the CPU, which runs bias_backward's column sums on dy)
    std::vector<float> dbias0(s.C);
    for (int c = 0; c < s.C; ++c) dbias0[c] = 0.1f * (float)(c % 9) - 0.45f;  // never 0
    std::vector<float> cbias = dbias0;  // the reference
    CPU_OK("bias_backward", sh, bj_cpu_bias_backward(cbias.data(), dy.data(), s.N, s.C, nullptr));
    {
      std::vector<float> dh2(n), dy2(n), dg2 = dg0, db2 = db0, dout2 = dout, by2 = dbias0;
      std::vector<uint16_t> low2(n);
      float* cdh2 = s.alias ? dout2.data() : dh2.data();
      CPU_OK("dropout_layernorm_backward (dbias_y)", sh,
             bj_cpu_dropout_layernorm_backward(cdh2, dy2.data(), low2.data(), dg2.data(),
                                               db2.data(), by2.data(), dout2.data(), h.data(),
                                               mean.data(), rstd.data(), gamma.data(), s.N, s.C,
                                               s.p, seed, offset, nullptr, nullptr));
      report_bits("dropout_layernorm_bwd cpu dbias_y", sh,
                  same_bits(std::vector<float>(cdh2, cdh2 + n), cdhv) && same_bits(dy2, dy) &&
                      same_bits(dg2, dg) && same_bits(db2, db) && same_bits(low2, cylow) &&
                      same_bits(by2, cbias));
      // dy aliasing dout (dh separate): the same dy and dbias_y
      std::vector<float> dh3(n), dg3 = dg0, db3 = db0, dout3 = dout, by3 = dbias0;
      CPU_OK("dropout_layernorm_backward (dbias_y, dy=dout)", sh,
             bj_cpu_dropout_layernorm_backward(dh3.data(), dout3.data(), nullptr, dg3.data(),
                                               db3.data(), by3.data(), dout3.data(), h.data(),
                                               mean.data(), rstd.data(), gamma.data(), s.N, s.C,
                                               s.p, seed, offset, nullptr, nullptr));
      report_bits("dropout_layernorm_bwd cpu dbias_y dy=dout", sh,
                  same_bits(dh3, cdhv) && same_bits(dout3, dy) && same_bits(by3, cbias));
    }
    {
      std::vector<float> udh(n), udy(n), udg = dg0, udb = db0;
      CPU_OK("layernorm_backward", sh,
             bj_cpu_layernorm_backward(udh.data(), udg.data(), udb.data(), dout.data(), h.data(),
                                       mean.data(), rstd.data(), gamma.data(), s.N, s.C, nullptr));
      CPU_OK("dropout_backward", sh,
             bj_cpu_dropout_backward(udy.data(), udh.data(), (int64_t)n, s.p, seed, offset, nullptr,
                                     nullptr));
      report_bits("dropout_layernorm_bwd cpu=unfused", sh,
                  same_bits(cdhv, udh) && same_bits(dy, udy) && same_bits(dg, udg) &&
                      same_bits(db, udb));
    }
    Dev<float> gdout(dout, s.pad), gdh(n, s.pad), gdy(n, s.pad), gdg(dg0), gdb(db0), gh3(h, s.pad),
        gm3(mean), gs3(rstd);
    float* gdh_ = s.alias ? gdout.p : gdh.p;
    if (GPU_OK("dropout_layernorm_backward", sh,
               bj_cuda_dropout_layernorm_backward(gdh_, gdy.p, nullptr, gdg.p, gdb.p, nullptr,
                                                  gdout.p, gh3.p, gm3.p, gs3.p, gg.p, s.N, s.C, s.p,
                                                  seed, offset, nullptr, nullptr))) {
      const auto gdhv = s.alias ? gdout.get() : gdh.get();
      report("dropout_layernorm_bwd dh", sh, rel(gdhv, cdhv), kBwd);
      report("dropout_layernorm_bwd dy", sh, rel(gdy.get(), dy), kBwd);
      report("dropout_layernorm_bwd dgamma", sh, rel(gdg.get(), dg), kBwd);
      report("dropout_layernorm_bwd dbeta", sh, rel(gdb.get(), db), kBwd);
      // with dy_low: the same fp32 outputs, dy_low = to_bf16(dy)
      Dev<uint16_t> gylow(n, lowpad);
      {
        Dev<float> gdout5(dout, s.pad), gdh5(n, s.pad), gdy5(n, s.pad), gdg5(dg0), gdb5(db0);
        float* gdh5_ = s.alias ? gdout5.p : gdh5.p;
        if (GPU_OK("dropout_layernorm_backward (dy_low)", sh,
                   bj_cuda_dropout_layernorm_backward(gdh5_, gdy5.p, gylow.p, gdg5.p, gdb5.p,
                                                      nullptr, gdout5.p, gh3.p, gm3.p, gs3.p, gg.p,
                                                      s.N, s.C, s.p, seed, offset, nullptr,
                                                      nullptr))) {
          report_bits("dropout_layernorm_bwd dy_low f32", sh + fmt(" lowpad=%d", lowpad),
                      same_bits(s.alias ? gdout5.get() : gdh5.get(), gdhv) &&
                          same_bits(gdy5.get(), gdy.get()) && same_bits(gdg5.get(), gdg.get()) &&
                          same_bits(gdb5.get(), gdb.get()));
          report_low("dropout_layernorm_bwd dy_low", sh + fmt(" lowpad=%d", lowpad), gylow.get(),
                     gdy.get(), cylow, dy);
        }
      }
      // with dbias_y from a nonzero start ("+=", the default path: summed in the same pass where
      // the row kernel runs): the other outputs the same bits, dbias_y close to bias_backward of
      // dy (the CPU's, and CUDA's of CUDA's dy), deterministic; also with dy aliasing dout
      std::vector<float> gbias_ref, gbias_v2;
      {
        Dev<float> gbref(dbias0);
        if (GPU_OK("bias_backward", sh,
                   bj_cuda_bias_backward(gbref.p, gdy.p, s.N, s.C, nullptr)))
          gbias_ref = gbref.get();
        Dev<float> gdout6(dout, s.pad), gdh6(n, s.pad), gdy6(n, s.pad), gdg6(dg0), gdb6(db0),
            gby6(dbias0);
        Dev<uint16_t> glow6(n, lowpad);
        float* gdh6_ = s.alias ? gdout6.p : gdh6.p;
        if (GPU_OK("dropout_layernorm_backward (dbias_y)", sh,
                   bj_cuda_dropout_layernorm_backward(gdh6_, gdy6.p, glow6.p, gdg6.p, gdb6.p,
                                                      gby6.p, gdout6.p, gh3.p, gm3.p, gs3.p, gg.p,
                                                      s.N, s.C, s.p, seed, offset, nullptr,
                                                      nullptr))) {
          gbias_v2 = gby6.get();
          report_bits("dropout_layernorm_bwd dbias_y f32", sh,
                      same_bits(s.alias ? gdout6.get() : gdh6.get(), gdhv) &&
                          same_bits(gdy6.get(), gdy.get()) && same_bits(gdg6.get(), gdg.get()) &&
                          same_bits(gdb6.get(), gdb.get()) && same_bits(glow6.get(), gylow.get()));
          report("dropout_layernorm_bwd dbias_y", sh, rel(gbias_v2, cbias), kBwd);
          if (!gbias_ref.empty())
            report("dropout_layernorm_bwd dbias_y~bias_bwd", sh, rel(gbias_v2, gbias_ref), kBwd);
          // again, with dy aliasing dout: the same dy and dbias_y bits
          Dev<float> gdout7(dout, s.pad), gdh7(n, s.pad), gdg7(dg0), gdb7(db0), gby7(dbias0);
          if (GPU_OK("dropout_layernorm_backward (dbias_y, dy=dout)", sh,
                     bj_cuda_dropout_layernorm_backward(gdh7.p, gdout7.p, nullptr, gdg7.p, gdb7.p,
                                                        gby7.p, gdout7.p, gh3.p, gm3.p, gs3.p,
                                                        gg.p, s.N, s.C, s.p, seed, offset, nullptr,
                                                        nullptr)))
            report_bits("dropout_layernorm_bwd dbias_y dy=dout", sh,
                        same_bits(gdout7.get(), gdy.get()) && same_bits(gby7.get(), gbias_v2) &&
                            same_bits(gdg7.get(), gdg.get()));
        }
      }
      // unfused on the GPU: the same bits
      Dev<float> gdout2(dout, s.pad), udh(n, s.pad), udy(n, s.pad), udg(dg0), udb(db0);
      if (GPU_OK("layernorm_backward", sh,
                 bj_cuda_layernorm_backward(udh.p, udg.p, udb.p, gdout2.p, gh3.p, gm3.p, gs3.p,
                                            gg.p, s.N, s.C, nullptr)) &&
          GPU_OK("dropout_backward", sh,
                 bj_cuda_dropout_backward(udy.p, udh.p, (int64_t)n, s.p, seed, offset, nullptr,
                                          nullptr)))
        report_bits("dropout_layernorm_bwd cuda=unfused", sh,
                    same_bits(gdhv, udh.get()) && same_bits(gdy.get(), udy.get()) &&
                        same_bits(gdg.get(), udg.get()) && same_bits(gdb.get(), udb.get()));
      // dy may be NULL: dh and the parameter gradients alone
      Dev<float> gdout3(dout, s.pad), ndh(n, s.pad), ndg(dg0), ndb(db0);
      if (GPU_OK("dropout_layernorm_backward (dy NULL)", sh,
                 bj_cuda_dropout_layernorm_backward(ndh.p, nullptr, nullptr, ndg.p, ndb.p, nullptr,
                                                    gdout3.p, gh3.p, gm3.p, gs3.p, gg.p, s.N, s.C,
                                                    s.p, seed, offset, nullptr, nullptr)))
        report_bits("dropout_layernorm_bwd dy=NULL", sh,
                    same_bits(ndh.get(), udh.get()) && same_bits(ndg.get(), udg.get()));
      // the layer norm backward's other kernels (BJ_LN_IMPL=v1, v2np, v2l2, v3, v3a; v3g/v3gp,
      // cooperative launches never run on a GPU yet, are left out of the default lists)
      // vs the default v2: the same dh bits (same per-row arithmetic), dgamma/dbeta close
      // (another summation order)
      for (const char* impl : {"v1", "v2np", "v2l2", "v3", "v3a"}) {
        setenv("BJ_LN_IMPL", impl, 1);
        Dev<float> vdh(n, s.pad), vdg(dg0), vdb(db0);
        const bool ran = GPU_OK(std::string("layernorm_backward ") + impl, sh,
                                bj_cuda_layernorm_backward(vdh.p, vdg.p, vdb.p, gdout2.p, gh3.p,
                                                           gm3.p, gs3.p, gg.p, s.N, s.C, nullptr));
        unsetenv("BJ_LN_IMPL");
        if (ran) {
          report_bits(std::string("layernorm_backward ") + impl + " dh = v2", sh,
                      same_bits(vdh.get(), udh.get()));
          report(std::string("layernorm_backward ") + impl + " dgamma", sh, rel(vdg.get(), dg),
                 kBwd);
          report(std::string("layernorm_backward ") + impl + " dbeta", sh, rel(vdb.get(), db),
                 kBwd);
        }
      }
      // the fused backward without prefetch (v2np), with v2l2's L2 prefetch and with v3's
      // launches / partial sum (v3, v3a, v3g): the same dh, dy and dy_low bits; v3, v3a and v3g
      // the same dgamma/dbeta bits as each other, and deterministic (a rerun adds the same bits).
      // dbias_y (from the same nonzero start): v2l2 (v2's kernels) the same bits as v2, the others
      // (bias_backward after the layer norm) the same bits as bias_backward of dy. The cooperative
      // v3g / v3gp, never run on a GPU yet, only in the CPU emulation.
      std::vector<float> v3dg, v3db;
#ifdef BJ_CUDA_EMU
      for (const char* impl : {"v2np", "v2l2", "v3", "v3a", "v3g", "v3gp"}) {
#else
      for (const char* impl : {"v2np", "v2l2", "v3", "v3a"}) {
#endif
        setenv("BJ_LN_IMPL", impl, 1);
        Dev<float> gdout4(dout, s.pad), pdh(n, s.pad), pdy(n, s.pad), pdg(dg0), pdb(db0),
            pby(dbias0);
        Dev<uint16_t> plow(n, lowpad);
        const std::string what = std::string("dropout_layernorm_backward ") + impl;
        const bool ran = GPU_OK(what, sh,
                                bj_cuda_dropout_layernorm_backward(
                                    pdh.p, pdy.p, plow.p, pdg.p, pdb.p, pby.p, gdout4.p, gh3.p,
                                    gm3.p, gs3.p, gg.p, s.N, s.C, s.p, seed, offset, nullptr,
                                    nullptr));
        if (ran) {
          report_bits(std::string("dropout_layernorm_bwd ") + impl + " = v2", sh,
                      same_bits(pdh.get(), udh.get()) && same_bits(pdy.get(), gdy.get()) &&
                          same_bits(plow.get(), gylow.get()));
          report(std::string("dropout_layernorm_bwd ") + impl + " dgamma", sh, rel(pdg.get(), dg),
                 kBwd);
          report(std::string("dropout_layernorm_bwd ") + impl + " dbeta", sh, rel(pdb.get(), db),
                 kBwd);
          report(std::string("dropout_layernorm_bwd ") + impl + " dbias_y", sh,
                 rel(pby.get(), cbias), kBwd);
          const bool same_kernels = std::strcmp(impl, "v2l2") == 0;
          report_bits(std::string("dropout_layernorm_bwd ") + impl +
                          (same_kernels ? " dbias_y = v2" : " dbias_y = bias_bwd"),
                      sh, same_bits(pby.get(), same_kernels ? gbias_v2 : gbias_ref));
        }
        if (ran && std::strncmp(impl, "v3", 2) == 0) {
          if (v3dg.empty()) {
            v3dg = pdg.get();
            v3db = pdb.get();
          } else {
            report_bits(std::string("dropout_layernorm_bwd ") + impl + " = v3 dgamma/dbeta", sh,
                        same_bits(pdg.get(), v3dg) && same_bits(pdb.get(), v3db));
          }
          // again from the result: the same partial sums are added to the same values
          Dev<float> rdg(pdg.get()), rdb(pdb.get()), qdg(pdg.get()), qdb(pdb.get());
          if (GPU_OK(what, sh,
                     bj_cuda_dropout_layernorm_backward(pdh.p, pdy.p, nullptr, rdg.p, rdb.p,
                                                        nullptr, gdout4.p, gh3.p, gm3.p, gs3.p,
                                                        gg.p, s.N, s.C, s.p, seed, offset, nullptr,
                                                        nullptr)) &&
              GPU_OK(what, sh,
                     bj_cuda_dropout_layernorm_backward(pdh.p, pdy.p, nullptr, qdg.p, qdb.p,
                                                        nullptr, gdout4.p, gh3.p, gm3.p, gs3.p,
                                                        gg.p, s.N, s.C, s.p, seed, offset, nullptr,
                                                        nullptr)))
            report_bits(std::string("dropout_layernorm_bwd ") + impl + " (rerun)", sh,
                        same_bits(rdg.get(), qdg.get()) && same_bits(rdb.get(), qdb.get()));
        }
        unsetenv("BJ_LN_IMPL");
      }
    }
  }
  // dy_low needs dy
  {
    float* dummy = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&dummy), 64 * sizeof(float));
    std::vector<float> c(64, 1.0f), cg(8, 0.0f);
    std::vector<uint16_t> clow(64);
    expect_invalid("error: dy_low without dy",
                   bj_cpu_dropout_layernorm_backward(c.data(), nullptr, clow.data(), cg.data(),
                                                     cg.data(), nullptr, c.data(), c.data(),
                                                     c.data(), c.data(), c.data(), 8, 8, 0.1f, 1, 0,
                                                     nullptr, nullptr),
                   false, "bj_cpu_dropout_layernorm_backward");
    expect_invalid("error: dy_low without dy",
                   bj_cuda_dropout_layernorm_backward(
                       dummy, nullptr, reinterpret_cast<uint16_t*>(dummy + 32), dummy, dummy,
                       nullptr, dummy, dummy, dummy, dummy, dummy, 8, 8, 0.1f, 1, 0, nullptr,
                       nullptr),
                   true, "bj_cuda_dropout_layernorm_backward");
    expect_invalid("error: dbias_y without dy",
                   bj_cpu_dropout_layernorm_backward(c.data(), nullptr, nullptr, cg.data(),
                                                     cg.data(), cg.data(), c.data(), c.data(),
                                                     c.data(), c.data(), c.data(), 8, 8, 0.1f, 1, 0,
                                                     nullptr, nullptr),
                   false, "bj_cpu_dropout_layernorm_backward");
    expect_invalid("error: dbias_y without dy",
                   bj_cuda_dropout_layernorm_backward(dummy, nullptr, nullptr, dummy + 32,
                                                      dummy + 40, dummy + 48, dummy, dummy, dummy,
                                                      dummy, dummy, 8, 8, 0.1f, 1, 0, nullptr,
                                                      nullptr),
                   true, "bj_cuda_dropout_layernorm_backward");
    cudaFree(dummy);
  }
}

// bias_add, bias_backward, bias_gelu_forward/backward: CUDA vs CPU; also the bf16 side outputs
// out_low / dpre_low (to_bf16 of out / dpre; the fp32 outputs unchanged by asking for them; every
// other shape with a low pointer off 8-byte alignment), the forward's optional outputs (out and/or
// pre NULL: the same out_low bits), and the v1 column partials (BJ_KERNEL_V1=bias_gelu_backward,
// which convert dpre after) against the default.
void test_gelu() {
  struct S {
    int N, C;
    bool bias, alias;
  };
  // The column sums take 64 column units (float4, or float when C % 4 != 0) per block: C = 12,
  // 4100 (a partial last tile), 771 (scalar), N from 2 to 1000.
  int shape_no = 0;
  for (S s : {S{5, 13, true, false}, S{300, 3072, true, false}, S{64, 768, false, true},
              S{1, 1, true, true}, S{130, 1030, true, true}, S{1000, 12, true, true},
              S{37, 4100, true, false}, S{513, 771, true, false}, S{2, 3, true, false}}) {
    const int lowpad = shape_no++ % 2;  // uint16 elements before the bf16 side outputs
    const std::string sh = fmt("N=%d C=%d bias=%d alias=%d", s.N, s.C, s.bias, s.alias);
    const std::string shl = sh + fmt(" lowpad=%d", lowpad);
    const size_t n = (size_t)s.N * s.C;
    {
      auto x = randn(n), b = randv(s.C);
      Dev<float> gx(x), gb(b);
      CPU_OK("bias_add", sh, bj_cpu_bias_add(x.data(), b.data(), s.N, s.C, nullptr));
      if (GPU_OK("bias_add", sh, bj_cuda_bias_add(gx.p, gb.p, s.N, s.C, nullptr)))
        report("bias_add", sh, rel(gx.get(), x), kFwd);
    }
    {
      auto d = randv(n), db = randv(s.C);
      Dev<float> gd(d), gdb(db);
      CPU_OK("bias_backward", sh, bj_cpu_bias_backward(db.data(), d.data(), s.N, s.C, nullptr));
      if (GPU_OK("bias_backward", sh, bj_cuda_bias_backward(gdb.p, gd.p, s.N, s.C, nullptr)))
        report("bias_backward", sh, rel(gdb.get(), db), kBwd);
    }
    {
      auto x = randn(n, 2.0f), b = randv(s.C);
      const std::vector<float> x0 = x;
      std::vector<float> out(n), pre(n);
      Dev<float> gx(x), gb(b), gout(n), gpre(n);
      float* cpre = s.alias ? x.data() : pre.data();
      float* gpre_ = s.alias ? gx.p : gpre.p;
      CPU_OK("bias_gelu_forward", sh,
             bj_cpu_bias_gelu_forward(out.data(), nullptr, cpre, x.data(),
                                      s.bias ? b.data() : nullptr, s.N, s.C, nullptr));
      // with out_low: the same fp32 outputs, out_low = to_bf16(out)
      std::vector<uint16_t> clow(n);
      {
        std::vector<float> x2 = x0, out2(n), pre2(n);
        float* cpre2 = s.alias ? x2.data() : pre2.data();
        CPU_OK("bias_gelu_forward (out_low)", sh,
               bj_cpu_bias_gelu_forward(out2.data(), clow.data(), cpre2, x2.data(),
                                        s.bias ? b.data() : nullptr, s.N, s.C, nullptr));
        report_bits("bias_gelu_forward cpu out_low", sh,
                    same_bits(out2, out) && same_bits(x2, x) && same_bits(pre2, pre) &&
                        same_bits(clow, bf16_of(out)));
      }
      if (GPU_OK("bias_gelu_forward", sh,
                 bj_cuda_bias_gelu_forward(gout.p, nullptr, gpre_, gx.p, s.bias ? gb.p : nullptr,
                                           s.N, s.C, nullptr))) {
        report("bias_gelu_forward out", sh, rel(gout.get(), out), kFwd);
        report("bias_gelu_forward pre", sh,
               rel(s.alias ? gx.get() : gpre.get(), std::vector<float>(cpre, cpre + n)), kFwd);
        Dev<float> gx2(x0), gout2(n), gpre2(n);
        Dev<uint16_t> glow(n, lowpad);
        if (GPU_OK("bias_gelu_forward (out_low)", sh,
                   bj_cuda_bias_gelu_forward(gout2.p, glow.p, s.alias ? gx2.p : gpre2.p, gx2.p,
                                             s.bias ? gb.p : nullptr, s.N, s.C, nullptr))) {
          report_bits("bias_gelu_forward out_low f32", shl,
                      same_bits(gout2.get(), gout.get()) && same_bits(gx2.get(), gx.get()) &&
                          (s.alias || same_bits(gpre2.get(), gpre.get())));
          report_low("bias_gelu_forward out_low", shl, glow.get(), gout2.get(), clow, out);
        }
      }
      // the optional outputs (inference): out (with out_low) and/or pre NULL. out_low has the
      // bits of the call with every output (CPU: clow; CUDA: gfull, and near the CPU's as above),
      // the given outputs theirs, and x is unchanged unless pre aliases it.
      {
        const std::vector<float> cprev(cpre, cpre + n);  // pre of the first call (x if aliased)
        Dev<float> gx3(x0), gout3(n), gpre3(n);
        Dev<uint16_t> gfull(n, lowpad);
        const bool gfull_ok =
            GPU_OK("bias_gelu_forward (out_low)", shl,
                   bj_cuda_bias_gelu_forward(gout3.p, gfull.p, s.alias ? gx3.p : gpre3.p, gx3.p,
                                             s.bias ? gb.p : nullptr, s.N, s.C, nullptr));
        const auto gfull_h = gfull.get();
        const auto gout_h = gout3.get();
        const auto gpre_h = s.alias ? gx3.get() : gpre3.get();
        for (int mode = 0; mode < 3; ++mode) {  // bit 0: out given, bit 1: pre given
          const bool with_out = mode & 1, with_pre = mode & 2;
          const std::string what = std::string("bias_gelu_forward") +
                                   (with_out ? " out" : " out=NULL") +
                                   (with_pre ? " pre" : " pre=NULL");
          std::vector<float> x3 = x0, o3(n), p3(n);
          std::vector<uint16_t> l3(n, 0xffff);
          float* cp = with_pre ? (s.alias ? x3.data() : p3.data()) : nullptr;
          if (CPU_OK(what, sh,
                     bj_cpu_bias_gelu_forward(with_out ? o3.data() : nullptr, l3.data(), cp,
                                              x3.data(), s.bias ? b.data() : nullptr, s.N, s.C,
                                              nullptr)))
            report_bits(what + " cpu", sh,
                        same_bits(l3, clow) && same_bits(x3, with_pre && s.alias ? cprev : x0) &&
                            (!with_out || same_bits(o3, out)) &&
                            (!with_pre || s.alias || same_bits(p3, cprev)));
          if (!gfull_ok) continue;
          Dev<float> gx4(x0), gout4(n), gpre4(n);
          Dev<uint16_t> glow4(n, lowpad);
          cudaMemset(glow4.p, 0xff, n * sizeof(uint16_t));
          float* gp4 = with_pre ? (s.alias ? gx4.p : gpre4.p) : nullptr;
          if (GPU_OK(what, shl,
                     bj_cuda_bias_gelu_forward(with_out ? gout4.p : nullptr, glow4.p, gp4, gx4.p,
                                               s.bias ? gb.p : nullptr, s.N, s.C, nullptr))) {
            const auto gl = glow4.get();
            report_bits(what + " cuda", shl,
                        same_bits(gl, gfull_h) &&
                            same_bits(gx4.get(), with_pre && s.alias ? gpre_h : x0) &&
                            (!with_out || same_bits(gout4.get(), gout_h)) &&
                            (!with_pre || s.alias || same_bits(gpre4.get(), gpre_h)));
            report_low(what, shl, gl, gout_h, clow, out);
          }
        }
      }
      auto dout = randv(n), db = randv(s.C);
      const std::vector<float> dout0 = dout;
      const std::vector<float> gdb0 = db;
      std::vector<float> dpre(n);
      std::vector<float> prev(cpre, cpre + n);
      Dev<float> gdout(dout), gdpre(n), gdb(db), gp(prev);
      float* cd = s.alias ? dout.data() : dpre.data();
      float* gd = s.alias ? gdout.p : gdpre.p;
      const bool with_db = s.bias;
      CPU_OK("bias_gelu_backward", sh,
             bj_cpu_bias_gelu_backward(cd, nullptr, with_db ? db.data() : nullptr, dout.data(),
                                       prev.data(), s.N, s.C, nullptr));
      const std::vector<float> cdv(cd, cd + n);
      // with dpre_low: the same fp32 outputs, dpre_low = to_bf16(dpre)
      std::vector<uint16_t> cdlow(n);
      {
        std::vector<float> dout2 = dout0, dpre2(n), db2 = gdb0;
        float* cd2 = s.alias ? dout2.data() : dpre2.data();
        CPU_OK("bias_gelu_backward (dpre_low)", sh,
               bj_cpu_bias_gelu_backward(cd2, cdlow.data(), with_db ? db2.data() : nullptr,
                                         dout2.data(), prev.data(), s.N, s.C, nullptr));
        report_bits("bias_gelu_backward cpu dpre_low", sh,
                    same_bits(std::vector<float>(cd2, cd2 + n), cdv) && same_bits(db2, db) &&
                        same_bits(cdlow, bf16_of(cdv)));
      }
      if (GPU_OK("bias_gelu_backward", sh,
                 bj_cuda_bias_gelu_backward(gd, nullptr, with_db ? gdb.p : nullptr, gdout.p, gp.p,
                                            s.N, s.C, nullptr))) {
        const auto gdv = s.alias ? gdout.get() : gdpre.get();
        report("bias_gelu_backward dpre", sh, rel(gdv, cdv), kBwd);
        if (with_db) report("bias_gelu_backward dbias", sh, rel(gdb.get(), db), kBwd);
        // with dpre_low; with dbias also the v1 column partials (to_bf16 after them)
        for (const char* v1 : {"", "bias_gelu_backward"}) {
          if (*v1 != '\0' && !with_db) continue;
          setenv("BJ_KERNEL_V1", v1, 1);
          Dev<float> gdout2(dout0), gdpre2(n), gdb2(gdb0);
          Dev<uint16_t> glow(n, lowpad);
          const std::string what = std::string("bias_gelu_backward") + (*v1 ? " v1" : "");
          const bool ran =
              GPU_OK(what + " (dpre_low)", sh,
                     bj_cuda_bias_gelu_backward(s.alias ? gdout2.p : gdpre2.p, glow.p,
                                                with_db ? gdb2.p : nullptr, gdout2.p, gp.p, s.N,
                                                s.C, nullptr));
          unsetenv("BJ_KERNEL_V1");
          if (!ran) continue;
          const auto gdv2 = s.alias ? gdout2.get() : gdpre2.get();
          if (*v1 == '\0')
            report_bits(what + " dpre_low f32", shl,
                        same_bits(gdv2, gdv) && same_bits(gdb2.get(), gdb.get()));
          else
            report_bits(what + " dpre_low: dpre = v2", shl, same_bits(gdv2, gdv));
          report_low(what + " dpre_low", shl, glow.get(), gdv2, cdlow, cdv);
        }
      }
      if (with_db && !s.alias) {  // rerun from the same dbias: the same bits
        Dev<float> gdb2(gdb0), gdpre2(n);
        if (GPU_OK("bias_gelu_backward", sh,
                   bj_cuda_bias_gelu_backward(gdpre2.p, nullptr, gdb2.p, gdout.p, gp.p, s.N, s.C,
                                              nullptr)))
          report_bits("bias_gelu_backward (rerun)", sh, same_bits(gdb2.get(), gdb.get()));
      }
    }
  }
  {  // out and out_low both NULL: an argument error on both backends
    std::vector<float> h(8);
    Dev<float> g(8);
    expect_invalid("bias_gelu_forward no output",
                   bj_cpu_bias_gelu_forward(nullptr, nullptr, h.data(), h.data(), nullptr, 2, 4,
                                            nullptr),
                   false, "bj_cpu_bias_gelu_forward");
    expect_invalid("bias_gelu_forward no output",
                   bj_cuda_bias_gelu_forward(nullptr, nullptr, g.p, g.p, nullptr, 2, 4, nullptr),
                   true, "bj_cuda_bias_gelu_forward");
  }
}

void test_tanh() {
  for (int64_t n : {1LL, 1001LL, 65536LL}) {
    const std::string sh = fmt("n=%lld", (long long)n);
    auto x = randn(n, 2.0f);
    std::vector<float> out(n);
    Dev<float> gx(x), gout(n);
    CPU_OK("tanh_forward", sh, bj_cpu_tanh_forward(out.data(), x.data(), n, nullptr));
    if (GPU_OK("tanh_forward", sh, bj_cuda_tanh_forward(gout.p, gx.p, n, nullptr)))
      report("tanh_forward", sh, rel(gout.get(), out), kFwd);
    auto dout = randv(n);
    std::vector<float> dx(n);
    Dev<float> gdout(dout), gdx(n), go(out);
    CPU_OK("tanh_backward", sh,
           bj_cpu_tanh_backward(dx.data(), dout.data(), out.data(), n, nullptr));
    if (GPU_OK("tanh_backward", sh, bj_cuda_tanh_backward(gdx.p, gdout.p, go.p, n, nullptr)))
      report("tanh_backward", sh, rel(gdx.get(), dx), kBwd);
  }
}

void test_dropout() {
  struct S {
    int64_t n;
    float p;
    uint64_t seed, offset;
    bool inplace;
    int pad;
  };
  for (S s : {S{1, 0.1f, 1, 0, false, 0}, S{1001, 0.1f, 42, 7, false, 1},
              S{1 << 20, 0.1f, 0x123456789abcdefULL, (1ULL << 33) + 5, true, 0},
              S{4099, 0.0f, 3, 0, false, 0}, S{4099, 0.5f, 3, 11, true, 0},
              // counters crossing 2^32 inside a group of 4; n % 4 = 3; unaligned; tiny p
              S{4103, 0.1f, 9, (1ULL << 32) - 4097, false, 0},
              S{1027, 0.3f, 5, (1ULL << 32) - 2, true, 2}, S{6, 0.9f, 77, 3, false, 3},
              S{2048, 1e-7f, 1, 0, false, 0},
              S{4101, 0.3f, 5, 1ULL << 32, false, 0}}) {  // (offset % 4 == 0: whole groups)
    const std::string sh = fmt("n=%lld p=%.1f off=%llu inplace=%d pad=%d", (long long)s.n, s.p,
                               (unsigned long long)s.offset, s.inplace, s.pad);
    auto x = randn(s.n);
    std::vector<float> out(s.n);
    Dev<float> gx(x, s.pad), gout(s.n, s.pad);
    float* co = s.inplace ? x.data() : out.data();
    float* go = s.inplace ? gx.p : gout.p;
    CPU_OK("dropout_forward", sh,
           bj_cpu_dropout_forward(co, x.data(), s.n, s.p, s.seed, s.offset, nullptr, nullptr));
    if (GPU_OK("dropout_forward", sh,
               bj_cuda_dropout_forward(go, gx.p, s.n, s.p, s.seed, s.offset, nullptr, nullptr)))
      report_bits("dropout_forward", sh,
                  same_bits(s.inplace ? gx.get() : gout.get(), std::vector<float>(co, co + s.n)));
    auto d = randn(s.n);
    std::vector<float> dx(s.n);
    Dev<float> gd(d, s.pad), gdx(s.n, s.pad);
    float* cdx = s.inplace ? d.data() : dx.data();
    float* gdx_ = s.inplace ? gd.p : gdx.p;
    CPU_OK("dropout_backward", sh,
           bj_cpu_dropout_backward(cdx, d.data(), s.n, s.p, s.seed, s.offset, nullptr, nullptr));
    if (GPU_OK("dropout_backward", sh,
               bj_cuda_dropout_backward(gdx_, gd.p, s.n, s.p, s.seed, s.offset, nullptr, nullptr)))
      report_bits("dropout_backward", sh,
                  same_bits(s.inplace ? gd.get() : gdx.get(), std::vector<float>(cdx, cdx + s.n)));
    std::vector<float> u(s.n);
    Dev<float> gu(s.n, s.pad);
    CPU_OK("philox_uniform", sh, bj_cpu_philox_uniform(u.data(), s.n, s.seed, s.offset, nullptr,
                                                       nullptr));
    if (GPU_OK("philox_uniform", sh,
               bj_cuda_philox_uniform(gu.p, s.n, s.seed, s.offset, nullptr, nullptr)))
      report_bits("philox_uniform", sh, same_bits(gu.get(), u));
  }
}

void test_attention(const char* impl) {
  // mask kinds: 0 = NULL, 1 = random lengths (batch 0 full), 2 = random lengths with the last
  // batch fully padded, 3 = random holes (not right-padded; batch 0 keeps its last key padded).
  // Dropout offset 12344 + off: off = 0 with T % 4 == 0 takes the kernels' whole-Philox-group
  // path (one call per 4 elements), anything else the per-element path.
  setenv("BJ_ATTN_IMPL", impl, 1);
  struct S {
    int B, T, NH, D;
    float p;
    int mask;
    int pad;
    int off = 0;
  };
  for (S s : {S{2, 70, 2, 64, 0.1f, 2, 0}, S{1, 1, 1, 64, 0.0f, 0, 0}, S{2, 128, 3, 32, 0.0f, 1, 0},
              S{2, 33, 2, 128, 0.1f, 2, 0}, S{1, 512, 1, 64, 0.1f, 1, 0},
              S{3, 97, 4, 64, 0.1f, 0, 0}, S{2, 17, 2, 32, 0.1f, 2, 1},
              S{2, 65, 1, 128, 0.0f, 1, 1}, S{1, 1, 2, 32, 0.1f, 2, 0},
              S{3, 128, 4, 16, 0.0f, 1, 0}, S{2, 45, 4, 16, 0.1f, 2, 1},
              S{1, 7, 2, 16, 0.1f, 0, 0}, S{2, 128, 2, 64, 0.0f, 1, 0},
              S{3, 100, 2, 64, 0.1f, 3, 1, 1}, S{2, 128, 2, 32, 0.0f, 3, 0},
              S{2, 120, 1, 64, 0.1f, 2, 0, 3}, S{2, 128, 2, 64, 0.1f, 1, 0},
              S{2, 100, 2, 64, 0.1f, 3, 0}, S{2, 96, 3, 32, 0.1f, 3, 1},
              S{1, 64, 2, 64, 0.1f, 2, 0}, S{2, 76, 1, 32, 0.1f, 1, 0, 2},
              S{1, 128, 1, 16, 0.1f, 3, 0}, S{1, 64, 1, 128, 0.1f, 3, 0},
              // D = 64 key ends in every 32-key class (the v3 backward's instantiations)
              S{4, 40, 2, 64, 0.1f, 1, 0}, S{2, 33, 3, 64, 0.0f, 3, 1},
              S{3, 128, 2, 64, 0.1f, 2, 0, 2}, S{1, 16, 2, 64, 0.0f, 2, 0}}) {
    const std::string sh = fmt("%s B=%d T=%d NH=%d D=%d p=%.1f mask=%d pad=%d off=%d", impl, s.B,
                               s.T, s.NH, s.D, s.p, s.mask, s.pad, s.off);
    const int C = s.NH * s.D;
    const size_t nqkv = (size_t)s.B * s.T * 3 * C, nout = (size_t)s.B * s.T * C;
    const size_t nlse = (size_t)s.B * s.NH * s.T;
    auto qkv = randn(nqkv);
    std::vector<int32_t> mask((size_t)s.B * s.T, 1);
    if (s.mask == 3) {
      std::bernoulli_distribution real(0.7);
      for (int b = 0; b < s.B; ++b)
        for (int t = 0; t < s.T; ++t) mask[(size_t)b * s.T + t] = real(g_rng) ? 1 : 0;
      mask[(size_t)s.T - 1] = 0;
    } else if (s.mask) {
      std::uniform_int_distribution<int> len(1, s.T);
      for (int b = 0; b < s.B; ++b) {
        int L = b == 0 ? s.T : len(g_rng);
        if (s.mask == 2 && b == s.B - 1) L = 0;
        for (int t = L; t < s.T; ++t) mask[(size_t)b * s.T + t] = 0;
      }
    }
    const uint64_t seed = 0xC0FFEEULL + s.T, offset = 12344 + (uint64_t)s.off;
    const int32_t* cm = s.mask ? mask.data() : nullptr;
    Dev<float> gqkv(qkv, s.pad), gout(nout, s.pad), glse(nlse);
    Dev<int32_t> gmask(mask);
    const int32_t* gm = s.mask ? gmask.p : nullptr;
    std::vector<float> out(nout), lse(nlse);
    CPU_OK("attention_forward", sh,
           bj_cpu_attention_forward(out.data(), lse.data(), qkv.data(), cm, s.B, s.T, s.NH, s.D,
                                    s.p, seed, offset, nullptr, nullptr));
    if (GPU_OK("attention_forward", sh,
               bj_cuda_attention_forward(gout.p, glse.p, gqkv.p, gm, s.B, s.T, s.NH, s.D, s.p,
                                         seed, offset, nullptr, nullptr))) {
      report("attention_forward out", sh, rel(gout.get(), out), kFwd);
      report("attention_forward lse", sh, rel(glse.get(), lse), kFwd);
    }
    // backward from the CPU's out and lse
    auto dout = randv(nout);
    std::vector<float> dqkv(nqkv);
    Dev<float> gdout(dout, s.pad), gout2(out, s.pad), glse2(lse), gdqkv(nqkv, s.pad);
    cudaMemset(gdqkv.p, 0xff, nqkv * sizeof(float));  // NaN: every element must be written
    CPU_OK("attention_backward", sh,
           bj_cpu_attention_backward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(),
                                     cm, s.B, s.T, s.NH, s.D, s.p, seed, offset, nullptr, nullptr));
    if (GPU_OK("attention_backward", sh,
               bj_cuda_attention_backward(gdqkv.p, gdout.p, gqkv.p, gout2.p, glse2.p, gm, s.B,
                                          s.T, s.NH, s.D, s.p, seed, offset, nullptr, nullptr))) {
      const auto g = gdqkv.get();
      if (s.T == 1) {
        // One key: softmax is constant, so dq and dk are exactly 0; both backends return
        // rounding noise, whose relative difference means nothing. Bound them against dv.
        const double scale = norm_of(dqkv, 2 * C, 3 * C, C) + 1e-30;
        report("attention_backward dq (T=1, |dq| / |dv|)", sh,
               norm_of(g, 0, 3 * C, C) / scale, kBwd);
        report("attention_backward dk (T=1, |dk| / |dv|)", sh,
               norm_of(g, C, 3 * C, C) / scale, kBwd);
      } else {
        report("attention_backward dq", sh, rel(g, dqkv, 0, SIZE_MAX, 3 * C, C), kBwd);
        report("attention_backward dk", sh, rel(g, dqkv, C, SIZE_MAX, 3 * C, C), kBwd);
      }
      report("attention_backward dv", sh, rel(g, dqkv, 2 * C, SIZE_MAX, 3 * C, C), kBwd);
      // deterministic, and on a stream of its own: a rerun gives the same bits
      cudaStream_t st = nullptr;
      cudaStreamCreate(&st);
      cudaMemset(gdqkv.p, 0, nqkv * sizeof(float));
      if (GPU_OK("attention_backward (stream)", sh,
                 bj_cuda_attention_backward(gdqkv.p, gdout.p, gqkv.p, gout2.p, glse2.p, gm, s.B,
                                            s.T, s.NH, s.D, s.p, seed, offset, nullptr, st))) {
        cudaStreamSynchronize(st);
        report_bits("attention_backward (rerun)", sh, same_bits(gdqkv.get(), g));
      }
      cudaStreamDestroy(st);
    }
  }
}

// attention_tc (bf16 tensor cores): CUDA tc vs CPU tc, which round the same values to bf16 at
// the same points. What remains is fp32 accumulation order and exp/log ulps (~1e-6 relative);
// such a difference flips the bf16 rounding of an element of P or dS with probability ~256 x
// 1e-6, and a flip moves that element by 2^-8 relative, so the relative norm difference is about
// sqrt(3e-4) x 4e-3 ~ 1e-4. Tolerances 1e-3 (forward) and 2e-3 (backward: dS = P (dP - D) loses
// digits to cancellation before its rounding) leave a margin over that and are still far below
// the ~4e-3 that a systematic error of one bf16 ulp would give. tc vs the fp32 op is checked
// loosely (2e-2): that is the bf16 rounding itself.
// The bf16 side outputs (out_low, dqkv_low) must hold exactly to_bf16 of the fp32 output of the
// same call, on each backend, and leave the fp32 outputs bit-identical to a call without them;
// the forward without out (inference) the same out_low and lse bits as with it.
// CUDA and CPU fp32 outputs differ in the last bits, so their bf16 copies are compared with the
// fp32 tolerances (a last-bit difference flips a bf16 rounding now and then).
void test_attention_tc() {
  constexpr double kTcFwd = 1e-3, kTcBwd = 2e-3, kTcVsF32 = 2e-2;
  struct S {
    int B, T, NH, D;
    float p;
    int mask;  // 0 = NULL, 1 = random lengths, 2 = lengths + last batch fully padded, 3 = holes
    int pad;
  };
  // small shapes in the emulator (one fiber per GPU thread) and under compute-sanitizer
  // (BJ_TEST_SMALL=1); more and larger ones on a GPU
  const std::vector<S> small = {S{2, 70, 2, 64, 0.1f, 2, 0},  S{1, 1, 1, 64, 0.0f, 0, 0},
                                S{2, 7, 2, 32, 0.1f, 3, 1},   S{1, 64, 1, 64, 0.0f, 1, 0},
                                S{2, 100, 1, 64, 0.1f, 3, 1}, S{1, 128, 1, 64, 0.1f, 0, 0},
                                S{2, 128, 1, 32, 0.0f, 2, 0}, S{2, 17, 1, 64, 0.1f, 2, 1}};
  const std::vector<S> large = {S{2, 70, 2, 64, 0.1f, 2, 0},  S{1, 1, 1, 64, 0.0f, 0, 0},
                                S{2, 7, 2, 32, 0.1f, 3, 1},   S{3, 64, 4, 64, 0.0f, 1, 0},
                                S{3, 100, 2, 64, 0.1f, 3, 1}, S{4, 128, 3, 64, 0.1f, 1, 0},
                                S{2, 128, 2, 32, 0.0f, 2, 0}, S{2, 17, 2, 64, 0.1f, 2, 1},
                                S{8, 128, 12, 64, 0.1f, 1, 0}, S{2, 1, 2, 32, 0.1f, 2, 0},
                                S{3, 128, 2, 64, 0.0f, 3, 0}, S{2, 113, 2, 32, 0.1f, 1, 1}};
#ifdef BJ_CUDA_EMU
  const bool use_small = true;
#else
  const bool use_small = std::getenv("BJ_TEST_SMALL") != nullptr;
#endif
  for (const S& s : use_small ? small : large) {
    const std::string sh = fmt("B=%d T=%d NH=%d D=%d p=%.1f mask=%d pad=%d", s.B, s.T, s.NH, s.D,
                               s.p, s.mask, s.pad);
    const int C = s.NH * s.D;
    const size_t nqkv = (size_t)s.B * s.T * 3 * C, nout = (size_t)s.B * s.T * C;
    const size_t nlse = (size_t)s.B * s.NH * s.T;
    auto qkv = randn(nqkv);
    std::vector<int32_t> mask((size_t)s.B * s.T, 1);
    if (s.mask == 3) {
      std::bernoulli_distribution real(0.7);
      for (int b = 0; b < s.B; ++b)
        for (int t = 0; t < s.T; ++t) mask[(size_t)b * s.T + t] = real(g_rng) ? 1 : 0;
      mask[(size_t)s.T - 1] = 0;
      if (s.T > 1) mask[0] = 1;
    } else if (s.mask) {
      std::uniform_int_distribution<int> len(1, s.T);
      for (int b = 0; b < s.B; ++b) {
        int L = b == 0 ? s.T : len(g_rng);
        if (s.mask == 2 && b == s.B - 1) L = 0;
        for (int t = L; t < s.T; ++t) mask[(size_t)b * s.T + t] = 0;
      }
    }
    const uint64_t seed = 0xBF16ULL + s.T, offset = 777;
    const int32_t* cm = s.mask ? mask.data() : nullptr;
    const int lpad = (s.B + s.T) % 3;  // bf16 side outputs at 0, 2 or 4 bytes off 8-byte alignment
    Dev<float> gqkv(qkv, s.pad), gout(nout, s.pad), glse(nlse);
    Dev<uint16_t> gout_low(nout, lpad);
    Dev<int32_t> gmask(mask);
    const int32_t* gm = s.mask ? gmask.p : nullptr;
    std::vector<float> out(nout), lse(nlse), out32(nout), lse32(nlse);
    CPU_OK("attention_tc_forward", sh,
           bj_cpu_attention_tc_forward(out.data(), nullptr, lse.data(), qkv.data(), cm, s.B, s.T,
                                       s.NH, s.D, s.p, seed, offset, nullptr, nullptr));
    std::vector<uint16_t> out_low(nout, 0xffff);
    {
      std::vector<float> o2(nout), l2(nlse);
      if (CPU_OK("attention_tc_forward (out_low)", sh,
                 bj_cpu_attention_tc_forward(o2.data(), out_low.data(), l2.data(), qkv.data(), cm,
                                             s.B, s.T, s.NH, s.D, s.p, seed, offset, nullptr,
                                             nullptr))) {
        report_bits("attention_tc cpu out_low: fp32 same", sh,
                    same_bits(o2, out) && same_bits(l2, lse));
        report_bits("attention_tc cpu out_low=bf16(out)", sh, out_low == bf16_of(out));
      }
      // out NULL (inference): the same out_low and lse bits
      std::vector<uint16_t> low3(nout, 0xffff);
      std::vector<float> l3(nlse, NAN);
      if (CPU_OK("attention_tc_forward (out=NULL)", sh,
                 bj_cpu_attention_tc_forward(nullptr, low3.data(), l3.data(), qkv.data(), cm, s.B,
                                             s.T, s.NH, s.D, s.p, seed, offset, nullptr, nullptr)))
        report_bits("attention_tc cpu out=NULL: same low", sh,
                    low3 == out_low && same_bits(l3, lse));
    }
    CPU_OK("attention_forward (fp32)", sh,
           bj_cpu_attention_forward(out32.data(), lse32.data(), qkv.data(), cm, s.B, s.T, s.NH,
                                    s.D, s.p, seed, offset, nullptr, nullptr));
    report("attention_tc cpu vs fp32 out", sh, rel(out, out32), kTcVsF32);
    cudaMemset(gout.p, 0xff, nout * sizeof(float));  // NaN: every element must be written
    cudaMemset(glse.p, 0xff, nlse * sizeof(float));
    if (GPU_OK("attention_tc_forward", sh,
               bj_cuda_attention_tc_forward(gout.p, nullptr, glse.p, gqkv.p, gm, s.B, s.T, s.NH,
                                            s.D, s.p, seed, offset, nullptr, nullptr))) {
      report("attention_tc_forward out", sh, rel(gout.get(), out), kTcFwd);
      report("attention_tc_forward lse", sh, rel(glse.get(), lse), kTcFwd);
    }
    // the forward's other query-chunk size (BJ_ATTN_TC_FWD_ROWS: 32 by default, 64) and the
    // warp-private kernel (BJ_ATTN_TC_FWD=warp), each also with out_low. The warp kernel computes
    // the same products in the same order as the 32-row one (the same 8 lanes per softmax row,
    // key order and shuffle tree): its out, lse and out_low bits must equal the rows=32 ones.
    std::vector<float> o32, l32;
    std::vector<uint16_t> gl32;
    for (const char* rows : {"64", "32", "warp"}) {
      const bool warp = rows[0] == 'w';
      if (warp) setenv("BJ_ATTN_TC_FWD", "warp", 1);
      else setenv("BJ_ATTN_TC_FWD_ROWS", rows, 1);
      cudaMemset(gout.p, 0xff, nout * sizeof(float));
      cudaMemset(glse.p, 0xff, nlse * sizeof(float));
      const std::string shr = sh + (warp ? " fwd=warp" : " rows=") + (warp ? "" : rows);
      if (GPU_OK("attention_tc_forward", shr,
                 bj_cuda_attention_tc_forward(gout.p, nullptr, glse.p, gqkv.p, gm, s.B, s.T, s.NH,
                                              s.D, s.p, seed, offset, nullptr, nullptr))) {
        const auto o = gout.get(), l = glse.get();
        report("attention_tc_forward out", shr, rel(o, out), kTcFwd);
        report("attention_tc_forward lse", shr, rel(l, lse), kTcFwd);
        if (rows[0] == '3') {
          o32 = o;
          l32 = l;
        }
        if (warp && !o32.empty())
          report_bits("attention_tc fwd=warp = rows=32", shr,
                      same_bits(o, o32) && same_bits(l, l32));
        cudaMemset(gout.p, 0xff, nout * sizeof(float));
        cudaMemset(glse.p, 0xff, nlse * sizeof(float));
        cudaMemset(gout_low.p, 0xff, nout * sizeof(uint16_t));
        const std::string shl = shr + fmt(" lpad=%d", lpad);
        if (GPU_OK("attention_tc_forward (out_low)", shl,
                   bj_cuda_attention_tc_forward(gout.p, gout_low.p, glse.p, gqkv.p, gm, s.B, s.T,
                                                s.NH, s.D, s.p, seed, offset, nullptr, nullptr))) {
          const auto gl = gout_low.get();
          report_bits("attention_tc out_low: fp32 same", shl,
                      same_bits(gout.get(), o) && same_bits(glse.get(), l));
          report_bits("attention_tc out_low=bf16(out)", shl, gl == bf16_of(o));
          report("attention_tc out_low cuda vs cpu", shl, rel(widen(gl), widen(out_low)), kTcFwd);
          if (rows[0] == '3') gl32 = gl;
          if (warp && !gl32.empty())
            report_bits("attention_tc fwd=warp out_low = rows=32", shl, gl == gl32);
          // out NULL (inference): the same out_low and lse bits
          cudaMemset(glse.p, 0xff, nlse * sizeof(float));
          cudaMemset(gout_low.p, 0xff, nout * sizeof(uint16_t));
          if (GPU_OK("attention_tc_forward (out=NULL)", shl,
                     bj_cuda_attention_tc_forward(nullptr, gout_low.p, glse.p, gqkv.p, gm, s.B,
                                                  s.T, s.NH, s.D, s.p, seed, offset, nullptr,
                                                  nullptr))) {
            const auto gl3 = gout_low.get();
            report_bits("attention_tc out=NULL: same low", shl,
                        gl3 == gl && same_bits(glse.get(), l));
            report("attention_tc out=NULL cuda vs cpu", shl, rel(widen(gl3), widen(out_low)),
                   kTcFwd);
          }
        }
      }
    }
    unsetenv("BJ_ATTN_TC_FWD_ROWS");
    unsetenv("BJ_ATTN_TC_FWD");
    auto dout = randv(nout);
    std::vector<float> dqkv(nqkv), dqkv32(nqkv);
    Dev<float> gdout(dout, s.pad), gout2(out, s.pad), glse2(lse), gdqkv(nqkv, s.pad);
    Dev<uint16_t> gdqkv_low(nqkv, lpad);
    cudaMemset(gdqkv.p, 0xff, nqkv * sizeof(float));  // NaN: every element must be written
    CPU_OK("attention_tc_backward", sh,
           bj_cpu_attention_tc_backward(dqkv.data(), nullptr, dout.data(), qkv.data(), out.data(),
                                        lse.data(), cm, s.B, s.T, s.NH, s.D, s.p, seed, offset,
                                        nullptr, nullptr));
    std::vector<uint16_t> dqkv_low(nqkv, 0xffff);
    {
      std::vector<float> d2(nqkv);
      if (CPU_OK("attention_tc_backward (dqkv_low)", sh,
                 bj_cpu_attention_tc_backward(d2.data(), dqkv_low.data(), dout.data(), qkv.data(),
                                              out.data(), lse.data(), cm, s.B, s.T, s.NH, s.D,
                                              s.p, seed, offset, nullptr, nullptr))) {
        report_bits("attention_tc cpu dqkv_low: fp32 same", sh, same_bits(d2, dqkv));
        report_bits("attention_tc cpu dqkv_low=bf16", sh, dqkv_low == bf16_of(dqkv));
      }
    }
    CPU_OK("attention_backward (fp32)", sh,
           bj_cpu_attention_backward(dqkv32.data(), dout.data(), qkv.data(), out32.data(),
                                     lse32.data(), cm, s.B, s.T, s.NH, s.D, s.p, seed, offset,
                                     nullptr, nullptr));
    report("attention_tc cpu vs fp32 dqkv", sh, rel(dqkv, dqkv32), kTcVsF32);
    if (GPU_OK("attention_tc_backward", sh,
               bj_cuda_attention_tc_backward(gdqkv.p, nullptr, gdout.p, gqkv.p, gout2.p, glse2.p,
                                             gm, s.B, s.T, s.NH, s.D, s.p, seed, offset, nullptr,
                                             nullptr))) {
      const auto g = gdqkv.get();
      report("attention_tc_backward dq", sh, rel(g, dqkv, 0, SIZE_MAX, 3 * C, C), kTcBwd);
      report("attention_tc_backward dk", sh, rel(g, dqkv, C, SIZE_MAX, 3 * C, C), kTcBwd);
      report("attention_tc_backward dv", sh, rel(g, dqkv, 2 * C, SIZE_MAX, 3 * C, C), kTcBwd);
      // the rerun writes dqkv_low too: dqkv must not change (deterministic, same bits)
      cudaMemset(gdqkv.p, 0, nqkv * sizeof(float));
      cudaMemset(gdqkv_low.p, 0xff, nqkv * sizeof(uint16_t));
      const std::string shl = sh + fmt(" lpad=%d", lpad);
      if (GPU_OK("attention_tc_backward (rerun)", shl,
                 bj_cuda_attention_tc_backward(gdqkv.p, gdqkv_low.p, gdout.p, gqkv.p, gout2.p,
                                               glse2.p, gm, s.B, s.T, s.NH, s.D, s.p, seed,
                                               offset, nullptr, nullptr))) {
        const auto gl = gdqkv_low.get();
        report_bits("attention_tc_backward (rerun)", shl, same_bits(gdqkv.get(), g));
        report_bits("attention_tc dqkv_low=bf16(dqkv)", shl, gl == bf16_of(g));
        report("attention_tc dqkv_low cuda vs cpu", shl, rel(widen(gl), widen(dqkv_low)),
               kTcBwd);
      }
    }
  }
  // unsupported shapes: T > 128 or D outside {32, 64}, on both backends
  float* dummy = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&dummy), 64 * sizeof(float));
  std::vector<float> h(64);
  const int cases[3][2] = {{129, 64}, {16, 128}, {16, 16}};
  for (const auto& td : cases) {
    const std::string sh = fmt("T=%d D=%d", td[0], td[1]);
    const bool ok =
        bj_cuda_attention_tc_forward(dummy, nullptr, dummy, dummy, nullptr, 1, td[0], 1, td[1],
                                     0.0f, 0, 0, nullptr, nullptr) == BJ_ERR_UNSUPPORTED &&
        bj_cuda_attention_tc_backward(dummy, nullptr, dummy, dummy, dummy, dummy, nullptr, 1,
                                      td[0], 1, td[1], 0.0f, 0, 0, nullptr,
                                      nullptr) == BJ_ERR_UNSUPPORTED &&
        bj_cpu_attention_tc_forward(h.data(), nullptr, h.data(), h.data(), nullptr, 1, td[0], 1,
                                    td[1], 0.0f, 0, 0, nullptr, nullptr) == BJ_ERR_UNSUPPORTED &&
        bj_cpu_attention_tc_backward(h.data(), nullptr, h.data(), h.data(), h.data(), h.data(),
                                     nullptr, 1, td[0], 1, td[1], 0.0f, 0, 0, nullptr,
                                     nullptr) == BJ_ERR_UNSUPPORTED;
    report_bits("attention_tc unsupported", sh, ok);
  }
  // out and out_low both NULL: an argument error on both backends
  expect_invalid("attention_tc_forward no output",
                 bj_cpu_attention_tc_forward(nullptr, nullptr, h.data(), h.data(), nullptr, 1, 4,
                                             1, 32, 0.0f, 0, 0, nullptr, nullptr),
                 false, "bj_cpu_attention_tc_forward");
  expect_invalid("attention_tc_forward no output",
                 bj_cuda_attention_tc_forward(nullptr, nullptr, dummy, dummy, nullptr, 1, 4, 1, 32,
                                              0.0f, 0, 0, nullptr, nullptr),
                 true, "bj_cuda_attention_tc_forward");
  cudaFree(dummy);
}

void test_losses() {
  for (auto [B, L] : {std::pair<int, int>{5, 3}, {64, 1000}, {1, 1}, {33, 2}}) {
    const std::string sh = fmt("B=%d L=%d", B, L);
    auto logits = randn((size_t)B * L, 3.0f);
    auto labels = randi(B, 0, L);
    if (B > 2) labels[1] = -1;  // ignored
    std::vector<float> loss(B), d((size_t)B * L);
    Dev<float> gl(logits), gloss(B), gd(d.size());
    Dev<int32_t> glab(labels);
    CPU_OK("cross_entropy", sh,
           bj_cpu_cross_entropy(loss.data(), d.data(), logits.data(), labels.data(), B, L, 0.25f,
                                nullptr));
    if (GPU_OK("cross_entropy", sh,
               bj_cuda_cross_entropy(gloss.p, gd.p, gl.p, glab.p, B, L, 0.25f, nullptr))) {
      report("cross_entropy loss", sh, rel(gloss.get(), loss), kFwd);
      report("cross_entropy dlogits", sh, rel(gd.get(), d), kBwd);
    }
    if (GPU_OK("cross_entropy (no grad)", sh,
               bj_cuda_cross_entropy(gloss.p, nullptr, gl.p, glab.p, B, L, 0.25f, nullptr)))
      report("cross_entropy loss (no grad)", sh, rel(gloss.get(), loss), kFwd);
  }
  for (int64_t n : {1LL, 1001LL, 70000LL}) {
    const std::string sh = fmt("n=%lld", (long long)n);
    auto x = randn(n, 4.0f), y = randv(n, 0.0f, 1.0f);
    std::vector<float> loss(n), d(n);
    Dev<float> gx(x), gy(y), gloss(n), gd(n);
    CPU_OK("bce_with_logits", sh,
           bj_cpu_bce_with_logits(loss.data(), d.data(), x.data(), y.data(), n, 0.5f, nullptr));
    if (GPU_OK("bce_with_logits", sh,
               bj_cuda_bce_with_logits(gloss.p, gd.p, gx.p, gy.p, n, 0.5f, nullptr))) {
      report("bce_with_logits loss", sh, rel(gloss.get(), loss), kFwd);
      report("bce_with_logits dlogits", sh, rel(gd.get(), d), kBwd);
    }
    CPU_OK("mse", sh, bj_cpu_mse(loss.data(), d.data(), x.data(), y.data(), n, 0.5f, nullptr));
    if (GPU_OK("mse", sh, bj_cuda_mse(gloss.p, gd.p, gx.p, gy.p, n, 0.5f, nullptr))) {
      report("mse loss", sh, rel(gloss.get(), loss), kFwd);
      report("mse dpred", sh, rel(gd.get(), d), kBwd);
    }
  }
}

void test_optimizer() {
  for (int64_t n : {1LL, 1001LL, 3000001LL}) {
    for (int pad : {0, 1}) {
      const std::string sh = fmt("n=%lld pad=%d", (long long)n, pad);
      auto x = randn(n);
      std::vector<float> out(1);
      Dev<float> gx(x, pad), gout(1);
      CPU_OK("sum_squares", sh, bj_cpu_sum_squares(out.data(), x.data(), n, nullptr));
      if (GPU_OK("sum_squares", sh, bj_cuda_sum_squares(gout.p, gx.p, n, nullptr))) {
        const auto a = gout.get();
        report("sum_squares", sh, rel(a, out), kFwd);
        // deterministic: a second run gives the same bits
        if (GPU_OK("sum_squares", sh, bj_cuda_sum_squares(gout.p, gx.p, n, nullptr)))
          report_bits("sum_squares (rerun)", sh, same_bits(gout.get(), a));
      }
    }
  }
  for (float nsq : {4.0f, 1e-4f, 0.0f}) {
    const std::string sh = fmt("norm_sq=%g max=1", (double)nsq);
    std::vector<float> ns = {nsq}, sc(1);
    Dev<float> gns(ns), gsc(1);
    CPU_OK("clip_scale", sh, bj_cpu_clip_scale(sc.data(), ns.data(), 1.0f, nullptr));
    if (GPU_OK("clip_scale", sh, bj_cuda_clip_scale(gsc.p, gns.p, 1.0f, nullptr)))
      report("clip_scale", sh, rel(gsc.get(), sc), kFwd);
  }
  // pad: the fp32 buffers' offset (1: the scalar path); lpad: p_low's offset in bf16 elements
  // (1, 2: not 8-byte aligned, the float4 path stores 4 scalars instead of one uint2)
  struct S {
    int64_t n;
    int step;
    bool gs;
    int pad, lpad;
  };
  for (S s : {S{1003, 1, false, 1, 0}, S{1 << 20, 10, true, 0, 1}, S{5, 3, true, 0, 0},
              S{70001, 2, false, 0, 0}, S{4099, 4, true, 0, 2}}) {
    const std::string sh = fmt("n=%lld step=%d grad_scale=%d pad=%d lpad=%d", (long long)s.n,
                               s.step, s.gs, s.pad, s.lpad);
    const auto p0 = randn(s.n), g = randn(s.n, 0.1f), m0 = randn(s.n, 0.01f),
               v0 = randv(s.n, 0.0f, 1e-3f);
    auto p = p0, m = m0, v = v0;
    std::vector<float> gsv = {0.5f};
    Dev<float> gp(p0, s.pad), gg(g, s.pad), gm(m0, s.pad), gv(v0, s.pad), ggs(gsv);
    const int64_t db = s.n / 3, de = s.n - s.n / 4;
    CPU_OK("adamw", sh,
           bj_cpu_adamw(p.data(), nullptr, g.data(), m.data(), v.data(), s.n, db, de, 1e-3f, 0.9f,
                        0.999f, 1e-8f, 0.01f, s.step, nullptr, s.gs ? gsv.data() : nullptr,
                        nullptr));
    // with p_low: the same p, m, v bits, and p_low = to_bf16(p)
    std::vector<uint16_t> p_low(s.n, 0xffff);
    {
      auto p2 = p0, m2 = m0, v2 = v0;
      if (CPU_OK("adamw (p_low)", sh,
                 bj_cpu_adamw(p2.data(), p_low.data(), g.data(), m2.data(), v2.data(), s.n, db, de,
                              1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, s.step, nullptr,
                              s.gs ? gsv.data() : nullptr, nullptr))) {
        report_bits("adamw cpu p_low: fp32 same", sh,
                    same_bits(p2, p) && same_bits(m2, m) && same_bits(v2, v));
        report_bits("adamw cpu p_low=bf16(p)", sh, p_low == bf16_of(p));
      }
    }
    if (GPU_OK("adamw", sh,
               bj_cuda_adamw(gp.p, nullptr, gg.p, gm.p, gv.p, s.n, db, de, 1e-3f, 0.9f, 0.999f,
                             1e-8f, 0.01f, s.step, nullptr, s.gs ? ggs.p : nullptr, nullptr))) {
      const auto rp = gp.get(), rm = gm.get(), rv = gv.get();
      report("adamw p", sh, rel(rp, p), kFwd);
      report("adamw m", sh, rel(rm, m), kFwd);
      report("adamw v", sh, rel(rv, v), kFwd);
      Dev<float> gp2(p0, s.pad), gm2(m0, s.pad), gv2(v0, s.pad);
      Dev<uint16_t> glow(s.n, s.lpad);
      cudaMemset(glow.p, 0xff, s.n * sizeof(uint16_t));
      if (GPU_OK("adamw (p_low)", sh,
                 bj_cuda_adamw(gp2.p, glow.p, gg.p, gm2.p, gv2.p, s.n, db, de, 1e-3f, 0.9f, 0.999f,
                               1e-8f, 0.01f, s.step, nullptr, s.gs ? ggs.p : nullptr, nullptr))) {
        const auto gl = glow.get();
        report_bits("adamw p_low: fp32 same", sh,
                    same_bits(gp2.get(), rp) && same_bits(gm2.get(), rm) &&
                        same_bits(gv2.get(), rv));
        report_bits("adamw p_low=bf16(p)", sh, gl == bf16_of(rp));
        report("adamw p_low cuda vs cpu", sh, rel(widen(gl), widen(p_low)), kFwd);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------
// Per-step scalars (bertj.h, bj_step_scalars): every op that takes a dropout seed, and adamw,
// given sc (device memory on CUDA, host memory on the CPU) holding seed S (lr, step) and wrong
// value arguments (another seed; adamw: lr = -1 and step = 0, invalid as arguments) gives the same
// bits as with sc = NULL and S (lr, step) as the arguments, on each backend and on every kernel
// variant (float4 and scalar paths, the layer norm's BJ_LN_IMPL and attention's BJ_ATTN_IMPL
// kernels, attention_tc's row chunks and its warp-private forward).
constexpr uint64_t kScSeed = 0x243F6A8885A308D3ULL, kBadSeed = 77;
constexpr float kScLr = 2e-3f, kBadLr = -1.0f;
constexpr int kScStep = 37, kBadStep = 0;

void append(std::vector<float>& out, const std::vector<float>& v) {
  out.insert(out.end(), v.begin(), v.end());
}
void append(std::vector<float>& out, const std::vector<uint16_t>& v) { append(out, widen(v)); }

// run(sc, seed, lr, step, out) runs an op with sc (or NULL) and those value arguments on fresh
// copies of its inputs and appends its outputs to out (false: it failed, already counted).
template <class Run>
void report_sc(const std::string& name, const std::string& sh, bool cuda, Run run) {
  const bj_step_scalars hsc{kScSeed, kScLr, kScStep};
  Dev<bj_step_scalars> dsc(std::vector<bj_step_scalars>{hsc});
  std::vector<float> with, without;
  if (run(cuda ? dsc.p : &hsc, kBadSeed, kBadLr, kBadStep, with) &&
      run(nullptr, kScSeed, kScLr, kScStep, without))
    report_bits(name + (cuda ? " cuda sc=args" : " cpu sc=args"), sh,
                !with.empty() && same_bits(with, without));
}

void test_step_scalars() {
  using SC = const bj_step_scalars*;
  // dropout, dropout_backward, philox_uniform: float4 path with whole Philox groups, scalar path
  for (int pad : {0, 1}) {
    const int64_t n = 1027;
    const uint64_t offset = pad ? 3 : 0;
    const std::string sh = fmt("n=%lld pad=%d offset=%llu", (long long)n, pad,
                               (unsigned long long)offset);
    const auto x = randn(n);
    report_sc("dropout_forward", sh, false, [&](SC sc, uint64_t seed, float, int, auto& out) {
      std::vector<float> y(n);
      if (!CPU_OK("dropout_forward", sh,
                  bj_cpu_dropout_forward(y.data(), x.data(), n, 0.1f, seed, offset, sc, nullptr)))
        return false;
      append(out, y);
      return true;
    });
    auto gpu_dropout = [&](SC sc, uint64_t seed, float, int, std::vector<float>& out) {
      Dev<float> gx(x, pad), gy(n, pad);
      if (!GPU_OK("dropout_forward", sh,
                  bj_cuda_dropout_forward(gy.p, gx.p, n, 0.1f, seed, offset, sc, nullptr)))
        return false;
      append(out, gy.get());
      return true;
    };
    report_sc("dropout_forward", sh, true, gpu_dropout);
    {  // the check itself: the wrong seed gives another mask
      std::vector<float> a, b;
      if (gpu_dropout(nullptr, kScSeed, 0.0f, 0, a) && gpu_dropout(nullptr, kBadSeed, 0.0f, 0, b)) {
        const bool differ = !same_bits(a, b);
        (differ ? g_pass : g_fail)++;
        std::printf("%-30s %-44s %-23s  %s\n", "dropout: the wrong seed", sh.c_str(),
                    differ ? "another mask" : "THE SAME MASK", differ ? "PASS" : "FAIL");
      }
    }
    report_sc("dropout_backward", sh, false, [&](SC sc, uint64_t seed, float, int, auto& out) {
      auto d = x;  // in place
      if (!CPU_OK("dropout_backward", sh,
                  bj_cpu_dropout_backward(d.data(), d.data(), n, 0.3f, seed, offset, sc, nullptr)))
        return false;
      append(out, d);
      return true;
    });
    report_sc("dropout_backward", sh, true, [&](SC sc, uint64_t seed, float, int, auto& out) {
      Dev<float> gd(x, pad);
      if (!GPU_OK("dropout_backward", sh,
                  bj_cuda_dropout_backward(gd.p, gd.p, n, 0.3f, seed, offset, sc, nullptr)))
        return false;
      append(out, gd.get());
      return true;
    });
    report_sc("philox_uniform", sh, false, [&](SC sc, uint64_t seed, float, int, auto& out) {
      std::vector<float> u(n);
      if (!CPU_OK("philox_uniform", sh,
                  bj_cpu_philox_uniform(u.data(), n, seed, offset, sc, nullptr)))
        return false;
      append(out, u);
      return true;
    });
    report_sc("philox_uniform", sh, true, [&](SC sc, uint64_t seed, float, int, auto& out) {
      Dev<float> gu(n, pad);
      if (!GPU_OK("philox_uniform", sh,
                  bj_cuda_philox_uniform(gu.p, n, seed, offset, sc, nullptr)))
        return false;
      append(out, gu.get());
      return true;
    });
  }

  // dropout_layernorm_{forward,backward}: C = 64 aligned (the register-team kernels; backward
  // on every BJ_LN_IMPL with a dropout mask), C = 13 (the scalar kernels)
  for (int C : {64, 13}) {
    const int N = 9;
    const size_t n = (size_t)N * C;
    const uint64_t offset = 1000;
    const float p = 0.2f;
    const std::string sh = fmt("N=%d C=%d p=%.1f", N, C, p);
    const auto y = randn(n, 2.0f), r = randn(n), gamma = randv(C, 0.5f, 1.5f), beta = randv(C),
               dout = randn(n), dg0 = randv(C), db0 = randv(C), dbias0 = randv(C);
    report_sc("dropout_layernorm_fwd", sh, false, [&](SC sc, uint64_t seed, float, int, auto& out) {
      std::vector<float> o(n), mean(N), rstd(N), h(n);
      std::vector<uint16_t> low(n);
      if (!CPU_OK("dropout_layernorm_forward", sh,
                  bj_cpu_dropout_layernorm_forward(o.data(), low.data(), mean.data(), rstd.data(),
                                                   h.data(), y.data(), r.data(), gamma.data(),
                                                   beta.data(), N, C, 1e-12f, p, seed, offset, sc,
                                                   nullptr)))
        return false;
      for (const auto* v : {&o, &mean, &rstd, &h}) append(out, *v);
      append(out, low);
      return true;
    });
    report_sc("dropout_layernorm_fwd", sh, true, [&](SC sc, uint64_t seed, float, int, auto& out) {
      Dev<float> gy(y), gr(r), gg(gamma), gb(beta), go(n), gm(N), gs(N), gh(n);
      Dev<uint16_t> glow(n);
      if (!GPU_OK("dropout_layernorm_forward", sh,
                  bj_cuda_dropout_layernorm_forward(go.p, glow.p, gm.p, gs.p, gh.p, gy.p, gr.p,
                                                    gg.p, gb.p, N, C, 1e-12f, p, seed, offset, sc,
                                                    nullptr)))
        return false;
      for (const auto* v : {&go, &gm, &gs, &gh}) append(out, v->get());
      append(out, glow.get());
      return true;
    });
    // the backward's inputs: a forward with the value path
    std::vector<float> h(n), mean(N), rstd(N);
    {
      std::vector<float> o(n);
      CPU_OK("dropout_layernorm_forward", sh,
             bj_cpu_dropout_layernorm_forward(o.data(), nullptr, mean.data(), rstd.data(),
                                              h.data(), y.data(), r.data(), gamma.data(),
                                              beta.data(), N, C, 1e-12f, p, kScSeed, offset,
                                              nullptr, nullptr));
    }
    report_sc("dropout_layernorm_bwd", sh, false, [&](SC sc, uint64_t seed, float, int, auto& out) {
      std::vector<float> dh(n), dy(n), dg = dg0, db = db0, dbias = dbias0;
      std::vector<uint16_t> low(n);
      if (!CPU_OK("dropout_layernorm_backward", sh,
                  bj_cpu_dropout_layernorm_backward(dh.data(), dy.data(), low.data(), dg.data(),
                                                    db.data(), dbias.data(), dout.data(),
                                                    h.data(), mean.data(), rstd.data(),
                                                    gamma.data(), N, C, p, seed, offset, sc,
                                                    nullptr)))
        return false;
      for (const auto* v : {&dh, &dy, &dg, &db, &dbias}) append(out, *v);
      append(out, low);
      return true;
    });
#ifdef BJ_CUDA_EMU
    const std::vector<const char*> impls = {"", "v2np", "v2l2", "v3", "v3a", "v3g", "v3gp"};
#else
    const std::vector<const char*> impls = {"", "v2np", "v2l2", "v3", "v3a"};
#endif
    for (const char* impl : impls) {
      if (C % 4 != 0 && *impl != '\0') continue;  // the scalar path has no variants
      if (*impl != '\0') setenv("BJ_LN_IMPL", impl, 1);
      report_sc(std::string("dropout_layernorm_bwd ") + (*impl ? impl : "v2"), sh, true,
                [&](SC sc, uint64_t seed, float, int, auto& out) {
                  Dev<float> gdout(dout), gh(h), gm(mean), gs(rstd), gg(gamma), gdh(n), gdy(n),
                      gdg(dg0), gdb(db0), gby(dbias0);
                  Dev<uint16_t> glow(n);
                  if (!GPU_OK("dropout_layernorm_backward", sh,
                              bj_cuda_dropout_layernorm_backward(
                                  gdh.p, gdy.p, glow.p, gdg.p, gdb.p, gby.p, gdout.p, gh.p, gm.p,
                                  gs.p, gg.p, N, C, p, seed, offset, sc, nullptr)))
                    return false;
                  for (const auto* v : {&gdh, &gdy, &gdg, &gdb, &gby}) append(out, v->get());
                  append(out, glow.get());
                  return true;
                });
      unsetenv("BJ_LN_IMPL");
    }
  }

  // attention_forward + attention_backward: D = 64 T = 32 (v1: k_attn_fwd + k_attn_bwd_fused,
  // v2: k_attn_fwd2 + k_attn_bwd2, v3: k_attn_fwd2 + k_attn_bwd3), D = 32 T = 19 offset 1 (the
  // per-element draws), D = 16 T = 20 (k_attn_fwd + k_attn_bwd_kv / k_attn_bwd_q)
  struct A {
    int B, T, NH, D;
    uint64_t offset;
  };
  for (const char* impl : {"v1", "v2", "v3"}) {
    setenv("BJ_ATTN_IMPL", impl, 1);
    for (A a : {A{2, 32, 2, 64, 0}, A{1, 19, 2, 32, 1}, A{2, 20, 1, 16, 0}}) {
      const std::string sh = fmt("%s B=%d T=%d NH=%d D=%d offset=%llu", impl, a.B, a.T, a.NH, a.D,
                                 (unsigned long long)a.offset);
      const int C = a.NH * a.D;
      const size_t nqkv = (size_t)a.B * a.T * 3 * C, nout = (size_t)a.B * a.T * C;
      const size_t nlse = (size_t)a.B * a.NH * a.T;
      const float p = 0.2f;
      const auto qkv = randn(nqkv), dout = randn(nout);
      std::vector<int32_t> mask((size_t)a.B * a.T, 1);
      for (int t = a.T - 5; t < a.T; ++t) mask[(size_t)(a.B - 1) * a.T + t] = 0;
      report_sc("attention fwd+bwd", sh, false, [&](SC sc, uint64_t seed, float, int, auto& out) {
        std::vector<float> o(nout), lse(nlse), dqkv(nqkv);
        if (!CPU_OK("attention_forward", sh,
                    bj_cpu_attention_forward(o.data(), lse.data(), qkv.data(), mask.data(), a.B,
                                             a.T, a.NH, a.D, p, seed, a.offset, sc, nullptr)) ||
            !CPU_OK("attention_backward", sh,
                    bj_cpu_attention_backward(dqkv.data(), dout.data(), qkv.data(), o.data(),
                                              lse.data(), mask.data(), a.B, a.T, a.NH, a.D, p,
                                              seed, a.offset, sc, nullptr)))
          return false;
        for (const auto* v : {&o, &lse, &dqkv}) append(out, *v);
        return true;
      });
      report_sc("attention fwd+bwd", sh, true, [&](SC sc, uint64_t seed, float, int, auto& out) {
        Dev<float> gqkv(qkv), gdout(dout), go(nout), glse(nlse), gdqkv(nqkv);
        Dev<int32_t> gmask(mask);
        if (!GPU_OK("attention_forward", sh,
                    bj_cuda_attention_forward(go.p, glse.p, gqkv.p, gmask.p, a.B, a.T, a.NH, a.D,
                                              p, seed, a.offset, sc, nullptr)) ||
            !GPU_OK("attention_backward", sh,
                    bj_cuda_attention_backward(gdqkv.p, gdout.p, gqkv.p, go.p, glse.p, gmask.p,
                                               a.B, a.T, a.NH, a.D, p, seed, a.offset, sc,
                                               nullptr)))
          return false;
        for (const auto* v : {&go, &glse, &gdqkv}) append(out, v->get());
        return true;
      });
    }
  }
  unsetenv("BJ_ATTN_IMPL");

  // attention_tc_forward + attention_tc_backward (bf16 side outputs too), D = 64 with the
  // forward's 32- and 64-row query chunks, D = 32; both with the warp-private forward
  for (A a : {A{2, 40, 2, 64, 0}, A{1, 19, 2, 32, 2}}) {
    const int C = a.NH * a.D;
    const size_t nqkv = (size_t)a.B * a.T * 3 * C, nout = (size_t)a.B * a.T * C;
    const size_t nlse = (size_t)a.B * a.NH * a.T;
    const float p = 0.2f;
    const auto qkv = randn(nqkv), dout = randn(nout);
    std::vector<int32_t> mask((size_t)a.B * a.T, 1);
    for (int t = a.T - 3; t < a.T; ++t) mask[t] = 0;
    for (const char* rows : {"32", "64", "warp"}) {
      if (a.D != 64 && rows[0] == '6') continue;
      if (rows[0] == 'w') setenv("BJ_ATTN_TC_FWD", "warp", 1);
      else setenv("BJ_ATTN_TC_FWD_ROWS", rows, 1);
      const std::string sh = fmt("B=%d T=%d NH=%d D=%d offset=%llu rows=%s", a.B, a.T, a.NH, a.D,
                                 (unsigned long long)a.offset, rows);
      if (rows[0] == '3')
        report_sc("attention_tc fwd+bwd", sh, false,
                  [&](SC sc, uint64_t seed, float, int, auto& out) {
                    std::vector<float> o(nout), lse(nlse), dqkv(nqkv);
                    std::vector<uint16_t> olow(nout), dlow(nqkv);
                    if (!CPU_OK("attention_tc_forward", sh,
                                bj_cpu_attention_tc_forward(o.data(), olow.data(), lse.data(),
                                                            qkv.data(), mask.data(), a.B, a.T,
                                                            a.NH, a.D, p, seed, a.offset, sc,
                                                            nullptr)) ||
                        !CPU_OK("attention_tc_backward", sh,
                                bj_cpu_attention_tc_backward(
                                    dqkv.data(), dlow.data(), dout.data(), qkv.data(), o.data(),
                                    lse.data(), mask.data(), a.B, a.T, a.NH, a.D, p, seed,
                                    a.offset, sc, nullptr)))
                      return false;
                    for (const auto* v : {&o, &lse, &dqkv}) append(out, *v);
                    append(out, olow);
                    append(out, dlow);
                    return true;
                  });
      report_sc("attention_tc fwd+bwd", sh, true, [&](SC sc, uint64_t seed, float, int, auto& out) {
        Dev<float> gqkv(qkv), gdout(dout), go(nout), glse(nlse), gdqkv(nqkv);
        Dev<uint16_t> golow(nout), gdlow(nqkv);
        Dev<int32_t> gmask(mask);
        if (!GPU_OK("attention_tc_forward", sh,
                    bj_cuda_attention_tc_forward(go.p, golow.p, glse.p, gqkv.p, gmask.p, a.B, a.T,
                                                 a.NH, a.D, p, seed, a.offset, sc, nullptr)) ||
            !GPU_OK("attention_tc_backward", sh,
                    bj_cuda_attention_tc_backward(gdqkv.p, gdlow.p, gdout.p, gqkv.p, go.p, glse.p,
                                                  gmask.p, a.B, a.T, a.NH, a.D, p, seed, a.offset,
                                                  sc, nullptr)))
          return false;
        for (const auto* v : {&go, &glse, &gdqkv}) append(out, v->get());
        append(out, golow.get());
        append(out, gdlow.get());
        return true;
      });
    }
    unsetenv("BJ_ATTN_TC_FWD_ROWS");
    unsetenv("BJ_ATTN_TC_FWD");
  }

  // adamw (lr and step): the float4 path and the scalar one, with and without grad_scale
  for (int pad : {0, 1}) {
    const int64_t n = 1031, db = 100, de = 900;
    const std::string sh = fmt("n=%lld pad=%d grad_scale=%d", (long long)n, pad, pad);
    const auto p0 = randn(n), g = randn(n, 0.1f), m0 = randn(n, 0.01f),
               v0 = randv(n, 0.0f, 1e-3f);
    const std::vector<float> gsv = {0.5f};
    report_sc("adamw", sh, false, [&](SC sc, uint64_t, float lr, int step, auto& out) {
      auto p = p0, m = m0, v = v0;
      std::vector<uint16_t> low(n);
      if (!CPU_OK("adamw", sh,
                  bj_cpu_adamw(p.data(), low.data(), g.data(), m.data(), v.data(), n, db, de, lr,
                               0.9f, 0.999f, 1e-8f, 0.01f, step, sc, pad ? gsv.data() : nullptr,
                               nullptr)))
        return false;
      for (const auto* x : {&p, &m, &v}) append(out, *x);
      append(out, low);
      return true;
    });
    report_sc("adamw", sh, true, [&](SC sc, uint64_t, float lr, int step, auto& out) {
      Dev<float> gp(p0, pad), gg(g, pad), gm(m0, pad), gv(v0, pad), ggs(gsv);
      Dev<uint16_t> glow(n, pad);
      if (!GPU_OK("adamw", sh,
                  bj_cuda_adamw(gp.p, glow.p, gg.p, gm.p, gv.p, n, db, de, lr, 0.9f, 0.999f,
                                1e-8f, 0.01f, step, sc, pad ? ggs.p : nullptr, nullptr)))
        return false;
      for (const auto* x : {&gp, &gm, &gv}) append(out, x->get());
      append(out, glow.get());
      return true;
    });
  }
}

void test_errors() {
  float* dummy = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&dummy), 64 * sizeof(float));
  ok_rc("error: fill NULL", "", bj_cuda_fill(nullptr, 4, 0.0f, nullptr), BJ_ERR_INVALID, true) &&
      (g_pass++, true);
  ok_rc("error: axpy n=0", "", bj_cuda_axpy(dummy, dummy, 0, 1.0f, nullptr), BJ_ERR_INVALID,
        true) &&
      (g_pass++, true);
  ok_rc("error: dropout p=1", "", bj_cuda_dropout_forward(dummy, dummy, 4, 1.0f, 0, 0, nullptr,
                                                          nullptr),
        BJ_ERR_INVALID, true) &&
      (g_pass++, true);
  ok_rc("error: attention D=48", "",
        bj_cuda_attention_forward(dummy, dummy, dummy, nullptr, 1, 1, 1, 48, 0.0f, 0, 0, nullptr,
                                  nullptr),
        BJ_ERR_UNSUPPORTED, true) &&
      (g_pass++, true);
  const bool named = std::strstr(bj_cuda_last_error(), "bj_cuda_attention_forward") != nullptr;
  (named ? g_pass : g_fail)++;
  std::printf("%-30s %-44s %-23s  %s\n", "error message names the op", bj_cuda_last_error(), "",
              named ? "PASS" : "FAIL");
  cudaFree(dummy);
}
}  // namespace

int main() {
  const int ndev = bj_cuda_device_count();
  if (ndev <= 0) {
    std::printf("SKIP: no CUDA device (bj_cuda_device_count = %d: %s)\n", ndev,
                bj_cuda_last_error());
    return 77;
  }
  std::printf("CUDA vs CPU, %d device(s)\n", ndev);
  // BJ_TEST_ONLY=attention_tc runs only the attention_tc checks (the emulator is slow)
  const char* only = std::getenv("BJ_TEST_ONLY");
  if (only && std::strcmp(only, "attention_tc") == 0) {
    test_attention_tc();
    std::printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
  }
  report_bits("num_threads", "bj_cuda_num_threads() == 0", bj_cuda_num_threads() == 0);
  // BJ_TEST_ONLY=<names> (comma-separated) runs only those op families (memory, gather,
  // embeddings, layernorm, gelu, tanh, dropout, attention, attention_tc, losses, optimizer,
  // dropout_layernorm, step_scalars, errors), e.g. in the emulator. Whole names: "attention_tc"
  // does not select "attention", "layernorm" not "dropout_layernorm".
  const char* only_fam = std::getenv("BJ_TEST_ONLY");
  const std::string fams = std::string(",") + (only_fam ? only_fam : "") + ",";
  auto want = [&](const char* fam) {
    return only_fam == nullptr || fams.find(std::string(",") + fam + ",") != std::string::npos;
  };
  if (want("memory")) test_memory();
  if (want("gather")) test_gather();
  if (want("embeddings")) test_embeddings();
  if (want("layernorm")) test_layernorm();
  if (want("gelu")) test_gelu();
  if (want("tanh")) test_tanh();
  if (want("dropout")) test_dropout();
  if (want("attention")) {
    // BJ_TEST_ATTN=<impls> (comma-separated BJ_ATTN_IMPL values: v1, v2, v3, v1fwd, v1bwd,
    // v3bwd) picks the implementations tested (default: v1,v2,v3; see attention.cu)
    const char* only = std::getenv("BJ_TEST_ATTN");
    const std::string list = std::string(",") + (only ? only : "v1,v2,v3") + ",";
    for (const char* impl : {"v1", "v2", "v3", "v1fwd", "v1bwd", "v3bwd"})
      if (list.find(std::string(",") + impl + ",") != std::string::npos) test_attention(impl);
    unsetenv("BJ_ATTN_IMPL");
  }
  if (want("attention_tc")) test_attention_tc();
  if (want("losses")) test_losses();
  if (want("optimizer")) test_optimizer();
  if (want("dropout_layernorm")) test_dropout_layernorm();  // after the others (same inputs)
  if (want("step_scalars")) test_step_scalars();
  if (want("errors")) test_errors();
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    std::printf("CUDA error at the end: %s\n", cudaGetErrorString(e));
    g_fail++;
  }
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
