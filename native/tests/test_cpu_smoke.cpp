// Smoke test of the CPU kernels through the C API: hand-computed values on tiny inputs, finite
// differences for the layer norm and attention backward passes, argument errors, and bit-identical
// parameter-gradient reductions for 1 and 2 OpenMP threads; the vectorized kernels (batched Philox,
// blocked attention, vector erf GELU) against scalar double references. Returns nonzero on any
// failure. (BERTJ_CPU_NO_AVX2=1 in the environment runs the SSE paths instead of AVX2.)
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "bertj.h"
#include "bertj_philox.h"

namespace {
int g_failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what);
    ++g_failures;
  }
}

void near(double got, double want, double tol, const char* what) {
  const bool ok = std::fabs(got - want) <= tol;  // false for NaN
  if (!ok) std::printf("FAIL: %s: got %.9g, want %.9g (tol %g)\n", what, got, want, tol);
  g_failures += !ok;
}

void ok_rc(int rc, const char* what) {
  if (rc != BJ_OK) std::printf("FAIL: %s returned %d: %s\n", what, rc, bj_cpu_last_error());
  g_failures += rc != BJ_OK;
}

// Deterministic pseudo-random floats in [-1, 1).
std::vector<float> rnd(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
  }
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double)a[i] * b[i];
  return s;
}

// ||analytic - fd|| / ||fd|| for the gradient of loss(x) w.r.t. x by central differences.
double fd_rel_err(std::vector<float>& x, const std::vector<float>& analytic,
                  const std::function<double()>& loss, float h) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss();
    x[i] = x0 - h;
    const double lm = loss();
    x[i] = x0;
    const double fd = (lp - lm) / (2.0 * h);
    num += (analytic[i] - fd) * (analytic[i] - fd);
    den += fd * fd;
  }
  return std::sqrt(num / (den > 0 ? den : 1e-30));
}

void test_gelu_tanh() {
  float x[3] = {1.0f, -1.0f, 0.0f}, pre[3], out[3], g[3] = {1, 1, 1}, dpre[3];
  ok_rc(bj_cpu_bias_gelu_forward(out, nullptr, pre, x, nullptr, 1, 3, nullptr),
        "bias_gelu_forward");
  near(out[0], 0.8413447, 1e-6, "gelu(1)");
  near(out[1], -0.1586553, 1e-6, "gelu(-1)");
  near(out[2], 0.0, 0.0, "gelu(0)");
  ok_rc(bj_cpu_bias_gelu_backward(dpre, nullptr, nullptr, g, pre, 1, 3, nullptr),
        "bias_gelu_backward");
  near(dpre[0], 1.0833155, 1e-6, "gelu'(1)");
  near(dpre[1], -0.0833155, 1e-6, "gelu'(-1)");
  near(dpre[2], 0.5, 1e-7, "gelu'(0)");

  float bias[2] = {1.0f, -2.0f}, y[4] = {0, 0, 1, 1}, db[2] = {10, 20};
  ok_rc(bj_cpu_bias_add(y, bias, 2, 2, nullptr), "bias_add");
  near(y[3], -1.0, 0, "bias_add value");
  ok_rc(bj_cpu_bias_backward(db, y, 2, 2, nullptr), "bias_backward");
  near(db[0], 13.0, 0, "bias_backward col 0");
  near(db[1], 17.0, 0, "bias_backward col 1");

  float t = 0.5f, to, dt, one = 1.0f;
  ok_rc(bj_cpu_tanh_forward(&to, &t, 1, nullptr), "tanh_forward");
  near(to, 0.46211716, 1e-7, "tanh(0.5)");
  ok_rc(bj_cpu_tanh_backward(&dt, &one, &to, 1, nullptr), "tanh_backward");
  near(dt, 1.0 - 0.46211716 * 0.46211716, 1e-6, "tanh'(0.5)");
}

void test_layernorm() {
  float x[3] = {1, 2, 3}, gamma[3] = {1, 1, 1}, beta[3] = {0, 0, 0}, out[3], mean, rstd;
  ok_rc(bj_cpu_layernorm_forward(out, &mean, &rstd, nullptr, x, nullptr, gamma, beta, 1, 3, 0.0f,
                                 nullptr),
        "layernorm_forward");
  near(mean, 2.0, 1e-7, "layernorm mean");
  near(rstd, 1.2247449, 1e-6, "layernorm rstd");
  near(out[0], -1.2247449, 1e-6, "layernorm out[0]");
  near(out[1], 0.0, 1e-7, "layernorm out[1]");
  near(out[2], 1.2247449, 1e-6, "layernorm out[2]");

  // Finite differences: loss = sum(out * w), w.r.t. x (through x + residual) and gamma.
  const int N = 3, C = 5;
  auto xs = rnd(N * C, 1), rs = rnd(N * C, 2), gm = rnd(C, 3), bt = rnd(C, 4), w = rnd(N * C, 5);
  std::vector<float> o(N * C), mu(N), rs_(N), hs(N * C), dh(N * C), dg(C, 0.f), dbt(C, 0.f);
  auto loss = [&]() {
    bj_cpu_layernorm_forward(o.data(), mu.data(), rs_.data(), hs.data(), xs.data(), rs.data(),
                             gm.data(), bt.data(), N, C, 1e-5f, nullptr);
    return dot(o, w);
  };
  loss();
  ok_rc(bj_cpu_layernorm_backward(dh.data(), dg.data(), dbt.data(), w.data(), hs.data(), mu.data(),
                                  rs_.data(), gm.data(), N, C, nullptr),
        "layernorm_backward");
  double e = fd_rel_err(xs, dh, loss, 1e-2f);
  std::printf("layernorm dx vs finite differences: rel err %.3g\n", e);
  near(e, 0, 2e-3, "layernorm dx vs finite differences");
  e = fd_rel_err(gm, dg, loss, 1e-2f);
  near(e, 0, 2e-3, "layernorm dgamma vs finite differences");
  e = fd_rel_err(bt, dbt, loss, 1e-2f);
  near(e, 0, 2e-3, "layernorm dbeta vs finite differences");
}

void test_losses() {
  const int L = 4;
  float logits[2 * L] = {0, 0, 0, 0, 1, 2, 3, 4}, losses[2], dl[2 * L];
  int32_t labels[2] = {2, -1};
  ok_rc(bj_cpu_cross_entropy(losses, dl, logits, labels, 2, L, 0.5f, nullptr), "cross_entropy");
  near(losses[0], std::log(4.0), 1e-6, "CE of uniform logits = log(L)");
  near(dl[0], 0.125, 1e-7, "CE grad, other class");
  near(dl[2], -0.375, 1e-7, "CE grad, label class");
  near(losses[1], 0.0, 0.0, "CE ignored row loss");
  near(dl[7], 0.0, 0.0, "CE ignored row grad");
  labels[1] = L;
  check(bj_cpu_cross_entropy(losses, dl, logits, labels, 2, L, 1.0f, nullptr) == BJ_ERR_INVALID,
        "CE label >= L is invalid");
  check(std::strstr(bj_cpu_last_error(), "labels[1]") != nullptr, "CE error names the row");

  float x[2] = {0.0f, 100.0f}, y[2] = {1.0f, 0.0f}, bl[2], bd[2];
  ok_rc(bj_cpu_bce_with_logits(bl, bd, x, y, 2, 1.0f, nullptr), "bce_with_logits");
  near(bl[0], std::log(2.0), 1e-6, "BCE(0, 1) = log 2");
  near(bd[0], -0.5, 1e-7, "BCE grad at 0");
  near(bl[1], 100.0, 1e-4, "BCE(100, 0) stable");
  near(bd[1], 1.0, 1e-7, "BCE grad at 100");

  float pr = 3.0f, tg = 1.0f, ml, md;
  ok_rc(bj_cpu_mse(&ml, &md, &pr, &tg, 1, 0.5f, nullptr), "mse");
  near(ml, 4.0, 0, "mse loss");
  near(md, 2.0, 0, "mse grad");
}

void test_optimizer() {
  // One AdamW step: p = 1, g = 0.5 (after grad_scale 0.5 of g = 1), lr 0.1, wd 0.01.
  float p[2] = {1, 1}, g[2] = {1, 1}, m[2] = {0, 0}, v[2] = {0, 0}, gs = 0.5f;
  ok_rc(bj_cpu_adamw(p, nullptr, g, m, v, 2, 0, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, nullptr,
                     &gs, nullptr),
        "adamw");
  near(p[0], 0.999 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-6, "adamw step with decay");
  near(p[1], 1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-6, "adamw step without decay");
  near(m[0], 0.05, 1e-6 * 0.05, "adamw m");
  near(v[0], 0.00025, 2e-5 * 0.00025, "adamw v");  // 1 - 0.999f = 0.00099998713
  check(bj_cpu_adamw(p, nullptr, g, m, v, 2, 0, 3, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, nullptr,
                     &gs, nullptr) == BJ_ERR_INVALID,
        "adamw decay_end > n is invalid");

  float xs[3] = {1, 2, 2}, ss, sc;
  ok_rc(bj_cpu_sum_squares(&ss, xs, 3, nullptr), "sum_squares");
  near(ss, 9.0, 0, "sum_squares");
  ok_rc(bj_cpu_clip_scale(&sc, &ss, 1.0f, nullptr), "clip_scale");
  near(sc, 1.0 / (3.0 + 1e-6), 1e-7, "clip_scale clips");
  ok_rc(bj_cpu_clip_scale(&sc, &ss, 10.0f, nullptr), "clip_scale");
  near(sc, 1.0, 0, "clip_scale no clip");
  ok_rc(bj_cpu_scale_by(xs, 3, &sc, nullptr), "scale_by");
  ok_rc(bj_cpu_axpy(xs, xs, 3, 1.0f, nullptr), "axpy");
  ok_rc(bj_cpu_fill(&ss, 1, 7.0f, nullptr), "fill");
  near(xs[2], 4.0, 0, "scale_by + axpy");
  near(ss, 7.0, 0, "fill");
}

void test_dropout() {
  // Known-answer vectors of Philox-4x32-10 (Random123's kat_vectors).
  uint32_t c0[4] = {0, 0, 0, 0}, c1[4] = {~0u, ~0u, ~0u, ~0u};
  uint32_t c2[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  bj_philox4x32_10(c0, 0, 0);
  bj_philox4x32_10(c1, ~0u, ~0u);
  bj_philox4x32_10(c2, 0xa4093822u, 0x299f31d0u);
  check(c0[0] == 0x6627e8d5u && c0[1] == 0xe169c58du && c0[2] == 0xbc57ac4cu &&
            c0[3] == 0x9b00dbd8u,
        "philox KAT zero");
  check(c1[0] == 0x408f276du && c1[1] == 0x41c83b0eu && c1[2] == 0xa20bc7c6u &&
            c1[3] == 0x6d5451fdu,
        "philox KAT ones");
  check(c2[0] == 0xd16cfe09u && c2[1] == 0x94fdccebu && c2[2] == 0x5001e420u &&
            c2[3] == 0x24126ea1u,
        "philox KAT pi");

  float u[4];
  ok_rc(bj_cpu_philox_uniform(u, 4, 42, 0, nullptr, nullptr), "philox_uniform");
  std::printf("philox(seed=42, idx=0..3) = %.9g %.9g %.9g %.9g\n", u[0], u[1], u[2], u[3]);
  for (int i = 0; i < 4; ++i) check(u[i] >= 0.0f && u[i] < 1.0f, "philox uniform in [0, 1)");
  check(u[0] != u[1] && u[1] != u[2] && u[2] != u[3] && u[0] != u[3], "philox values differ");

  const int n = 1000;
  std::vector<float> x(n, 1.0f), y(n), w(n), dx(n);
  ok_rc(bj_cpu_dropout_forward(y.data(), x.data(), n, 0.25f, 7, 100, nullptr, nullptr),
        "dropout_forward");
  ok_rc(bj_cpu_philox_uniform(w.data(), n, 7, 100, nullptr, nullptr), "philox_uniform");
  int kept = 0;
  bool same = true;
  for (int i = 0; i < n; ++i) {
    kept += y[i] != 0.0f;
    same &= y[i] == (w[i] >= 0.25f ? 1.0f / 0.75f : 0.0f);
  }
  check(same, "dropout mask = philox_uniform >= p, scale 1/(1-p)");
  check(kept > 650 && kept < 850, "dropout keeps about 1 - p");
  ok_rc(bj_cpu_dropout_backward(dx.data(), x.data(), n, 0.25f, 7, 100, nullptr, nullptr),
        "dropout_backward");
  check(dx == y, "dropout backward uses the same mask");
  check(bj_cpu_dropout_forward(y.data(), x.data(), n, 1.0f, 7, 0, nullptr,
                               nullptr) == BJ_ERR_INVALID,
        "dropout p = 1 is invalid");
}

void test_attention() {
  // Hand value: B=1, T=2, NH=1, D=1: q0 = 1, k = (1, 0), v = (1, 3), no dropout.
  // s = (1, 0), P = (e/(1+e), 1/(1+e)), out_0 = P0 + 3 P1.
  float qkv1[6] = {1, 1, 1, 0, 0, 3}, o1[2], l1[2];
  ok_rc(bj_cpu_attention_forward(o1, l1, qkv1, nullptr, 1, 2, 1, 1, 0.0f, 0, 0, nullptr, nullptr),
        "attention_forward");
  const double e = std::exp(1.0);
  near(o1[0], e / (1 + e) + 3 / (1 + e), 1e-6, "attention out_0");
  near(l1[0], std::log(1 + e), 1e-6, "attention lse_0");

  // Finite differences with padding (batch 1 has one padded key, batch 2 is all padding) and
  // dropout: loss = sum(out * w).
  const int B = 3, T = 3, NH = 2, D = 2, C = NH * D;
  const float p = 0.3f;
  const int32_t mask[B * T] = {1, 1, 1, 1, 1, 0, 0, 0, 0};
  auto qkv = rnd(B * T * 3 * C, 11), w = rnd(B * T * C, 12);
  std::vector<float> out(B * T * C), lse(B * NH * T), dqkv(qkv.size(), 123.0f);
  auto loss = [&]() {
    bj_cpu_attention_forward(out.data(), lse.data(), qkv.data(), mask, B, T, NH, D, p, 5, 77,
                             nullptr, nullptr);
    return dot(out, w);
  };
  loss();
  near(lse[2 * NH * T], std::log((double)T), 1e-6, "attention lse of an all-padding row");
  ok_rc(bj_cpu_attention_backward(dqkv.data(), w.data(), qkv.data(), out.data(), lse.data(), mask,
                                  B, T, NH, D, p, 5, 77, nullptr, nullptr),
        "attention_backward");
  const double err = fd_rel_err(qkv, dqkv, loss, 1e-2f);
  std::printf("attention dqkv vs finite differences: rel err %.3g\n", err);
  near(err, 0, 2e-3, "attention dqkv vs finite differences");
  float padded_dk = 0;
  for (int d = 0; d < C; ++d) padded_dk += std::fabs(dqkv[(1 * T + 2) * 3 * C + C + d]);
  near(padded_dk, 0, 0, "attention: a padded key gets no dk");
}

// The batched Philox draws equal the scalar bj_dropout_uniform, including odd lengths and counters
// that cross a 2^32 boundary (the high counter word changes inside a vector).
void test_philox_batch() {
  const int n = 1037;
  const uint64_t seed = 0x0123456789abcdefull;
  for (uint64_t offset : {0ull, 5ull, (1ull << 32) - 13, (3ull << 32) - 600}) {
    std::vector<float> u(n), d(n, 1.0f), y(n);
    ok_rc(bj_cpu_philox_uniform(u.data(), n, seed, offset, nullptr, nullptr),
          "philox_uniform (batch)");
    bool same = true;
    for (int i = 0; i < n; ++i) same &= u[i] == bj_dropout_uniform(seed, offset + (uint64_t)i);
    check(same, "batched philox_uniform == bj_dropout_uniform");
    ok_rc(bj_cpu_dropout_forward(y.data(), d.data(), n, 0.3f, seed, offset, nullptr, nullptr),
          "dropout");
    for (int i = 0; i < n; ++i)
      same &= y[i] == (bj_dropout_uniform(seed, offset + (uint64_t)i) >= 0.3f ? 1.0f / 0.7f : 0.0f);
    check(same, "dropout mask == scalar Philox");
  }
}

// gelu and gelu' against the double formulas over [-10, 10] (erfc for the negative tail, where
// 1 + erf cancels): relative error <= 1e-5 where |ref| > 1e-20 (a few 1e-7 but near -10, where
// the exp(-z^2) argument rounds), absolute <= 1e-6.
void test_gelu_accuracy() {
  const int n = 20001;
  std::vector<float> x(n), out(n), pre(n), g(n, 1.0f), dpre(n);
  for (int i = 0; i < n; ++i) x[i] = -10.0f + 20.0f * (float)i / (float)(n - 1);
  ok_rc(bj_cpu_bias_gelu_forward(out.data(), nullptr, pre.data(), x.data(), nullptr, 1, n,
                                 nullptr),
        "bias_gelu_forward (accuracy)");
  ok_rc(bj_cpu_bias_gelu_backward(dpre.data(), nullptr, nullptr, g.data(), pre.data(), 1, n,
                                  nullptr),
        "bias_gelu_backward (accuracy)");
  double max_rel = 0, max_abs = 0, max_abs_g = 0;
  for (int i = 0; i < n; ++i) {
    const double xd = x[i], phi = 0.5 * std::erfc(-xd / std::sqrt(2.0));
    const double ref = xd * phi;
    const double refg = phi + xd * std::exp(-0.5 * xd * xd) / std::sqrt(2.0 * M_PI);
    const double e = std::fabs(out[i] - ref);
    max_abs = std::max(max_abs, e);
    if (std::fabs(ref) > 1e-20) max_rel = std::max(max_rel, e / std::fabs(ref));
    max_abs_g = std::max(max_abs_g, std::fabs(dpre[i] - refg));
  }
  std::printf("gelu vs double: max rel %.3g, max abs %.3g; gelu' max abs %.3g\n", max_rel, max_abs,
              max_abs_g);
  near(max_rel, 0, 1e-5, "gelu max relative error");
  near(max_abs, 0, 1e-6, "gelu max absolute error");
  near(max_abs_g, 0, 1e-6, "gelu' max absolute error");
  float sp[3] = {INFINITY, NAN, 1e30f}, so[3], sq[3];
  ok_rc(bj_cpu_bias_gelu_forward(so, nullptr, sq, sp, nullptr, 1, 3, nullptr),
        "gelu special values");
  check(so[0] == INFINITY && std::isnan(so[1]) && so[2] == 1e30f, "gelu(inf, nan, 1e30)");
}

// Scalar double reference of the attention forward / backward (the formulas of bertj.h).
void attention_ref(std::vector<double>& out, std::vector<double>& dqkv, const float* qkv,
                   const float* dout, const int32_t* mask, int B, int T, int NH, int D, float p,
                   uint64_t seed, uint64_t offset) {
  const int64_t C = (int64_t)NH * D, C3 = 3 * C;
  const double scale = 1.0 / std::sqrt((double)D), inv_keep = 1.0 / (1.0 - p);
  out.assign((size_t)B * T * C, 0.0);
  dqkv.assign((size_t)B * T * C3, 0.0);
  std::vector<double> P(T), f(T), dP(T);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int i = 0; i < T; ++i) {
        const float* q = qkv + ((int64_t)b * T + i) * C3 + (int64_t)h * D;
        int nreal = 0;
        double mx = -1e300;
        for (int j = 0; j < T; ++j) {
          const uint64_t idx = offset + (((uint64_t)b * NH + h) * T + i) * T + j;
          f[j] = p == 0.0f ? 1.0 : (bj_dropout_uniform(seed, idx) >= p ? inv_keep : 0.0);
          P[j] = -1e300;
          if (mask && mask[b * T + j] == 0) continue;
          const float* k = qkv + ((int64_t)b * T + j) * C3 + C + (int64_t)h * D;
          double s = 0;
          for (int d = 0; d < D; ++d) s += (double)q[d] * k[d];
          P[j] = s * scale;
          mx = std::max(mx, P[j]);
          ++nreal;
        }
        double sum = 0;
        for (int j = 0; j < T; ++j) {
          P[j] = nreal == 0 ? 1.0 / T : (P[j] == -1e300 ? 0.0 : std::exp(P[j] - mx));
          sum += P[j];
        }
        for (int j = 0; j < T; ++j) P[j] /= sum;
        const float* go = dout + ((int64_t)b * T + i) * C + (int64_t)h * D;
        double* o = &out[((size_t)b * T + i) * C + (size_t)h * D];
        double Di = 0;
        for (int j = 0; j < T; ++j) {
          const float* v = qkv + ((int64_t)b * T + j) * C3 + 2 * C + (int64_t)h * D;
          double gv = 0;
          for (int d = 0; d < D; ++d) {
            o[d] += P[j] * f[j] * v[d];
            gv += (double)go[d] * v[d];
          }
          dP[j] = f[j] * gv;
        }
        for (int d = 0; d < D; ++d) Di += (double)go[d] * o[d];
        for (int j = 0; j < T; ++j) {
          double* dv = &dqkv[((size_t)b * T + j) * C3 + 2 * C + (size_t)h * D];
          for (int d = 0; d < D; ++d) dv[d] += P[j] * f[j] * go[d];
          if (nreal == 0) continue;
          const double dS = scale * P[j] * (dP[j] - Di);
          const float* k = qkv + ((int64_t)b * T + j) * C3 + C + (int64_t)h * D;
          double* dq = &dqkv[((size_t)b * T + i) * C3 + (size_t)h * D];
          double* dk = &dqkv[((size_t)b * T + j) * C3 + C + (size_t)h * D];
          for (int d = 0; d < D; ++d) {
            dq[d] += dS * k[d];
            dk[d] += dS * q[d];
          }
        }
      }
}

double rel_err(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// The blocked attention kernels against the double reference, over shapes that exercise the row
// blocks (T > 32), key padding to 16, D not a multiple of the vector width, mask holes, an
// all-padding batch and dropout; and the same bits for 1 and 2 threads.
void test_attention_blocked() {
  struct Shape {
    int B, T, NH, D;
    float p;
  };
  for (const Shape& sh : {Shape{3, 37, 2, 16, 0.0f}, Shape{3, 70, 3, 32, 0.1f},
                          Shape{2, 19, 2, 7, 0.25f}, Shape{3, 33, 1, 64, 0.1f}}) {
    const int B = sh.B, T = sh.T, NH = sh.NH, D = sh.D, C = NH * D;
    std::vector<int32_t> mask((size_t)B * T, 1);
    for (int t = 0; t < T; ++t) {
      mask[t] = t % 5 != 3;        // batch 0: holes
      if (B > 1) mask[T + t] = t < T / 2;  // batch 1: padded tail
      if (B > 2) mask[2 * T + t] = 0;      // batch 2: all padding
    }
    auto qkv = rnd((size_t)B * T * 3 * C, 31 + T), dout = rnd((size_t)B * T * C, 32 + T);
    for (auto& v : qkv) v *= 2.0f;
    std::vector<double> ro, rd;
    attention_ref(ro, rd, qkv.data(), dout.data(), mask.data(), B, T, NH, D, sh.p, 9, 1000);
    std::vector<float> bits[2];
    for (int k = 0; k < 2; ++k) {
      omp_set_num_threads(k + 1);
      std::vector<float> out((size_t)B * T * C), lse((size_t)B * NH * T),
          dqkv(qkv.size(), 5.0f);
      ok_rc(bj_cpu_attention_forward(out.data(), lse.data(), qkv.data(), mask.data(), B, T, NH, D,
                                     sh.p, 9, 1000, nullptr, nullptr),
            "attention_forward (blocked)");
      ok_rc(bj_cpu_attention_backward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(),
                                      mask.data(), B, T, NH, D, sh.p, 9, 1000, nullptr, nullptr),
            "attention_backward (blocked)");
      if (k == 0) {
        const double eo = rel_err(out, ro), ed = rel_err(dqkv, rd);
        std::printf("attention B%d T%d NH%d D%d p%.2f vs double: out %.3g, dqkv %.3g\n", B, T, NH,
                    D, (double)sh.p, eo, ed);
        near(eo, 0, 1e-5, "attention out vs double reference");
        near(ed, 0, 1e-4, "attention dqkv vs double reference");
        if (B > 2) near(lse[2 * NH * T], std::log((double)T), 1e-6, "all-padding lse = log T");
      }
      bits[k] = out;
      bits[k].insert(bits[k].end(), lse.begin(), lse.end());
      bits[k].insert(bits[k].end(), dqkv.begin(), dqkv.end());
    }
    check(bits[0].size() == bits[1].size() &&
              std::memcmp(bits[0].data(), bits[1].data(), bits[0].size() * sizeof(float)) == 0,
          "attention bit-identical for 1 and 2 threads");
  }
  omp_set_num_threads(omp_get_num_procs());
}

// Parameter-gradient reductions give the same bits with 1 and 2 threads.
void test_determinism() {
  const int N = 300, C = 100, V = 7, T = 30, B = N / T;
  auto dout = rnd(N * C, 21), h = rnd(N * C, 22), gm = rnd(C, 23), mu = rnd(N, 24);
  std::vector<float> rs(N, 1.3f);
  std::vector<int32_t> ids(N);
  for (int r = 0; r < N; ++r) ids[r] = (r * 5) % V;
  std::vector<float> res[2];
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(k + 1);
    std::vector<float> dh(N * C), dg(C, 0.5f), db(C, 0.25f), dwte(V * C, 0.f), dwpe(T * C, 0.f),
        dbias(C, 0.f), ss(1);
    bj_cpu_layernorm_backward(dh.data(), dg.data(), db.data(), dout.data(), h.data(), mu.data(),
                              rs.data(), gm.data(), N, C, nullptr);
    bj_cpu_embeddings_backward(dwte.data(), dwpe.data(), nullptr, dout.data(), ids.data(), nullptr,
                               B, T, C, V, T, 1, nullptr);
    bj_cpu_bias_backward(dbias.data(), dout.data(), N, C, nullptr);
    bj_cpu_sum_squares(ss.data(), dout.data(), N * C, nullptr);
    res[k] = dh;
    for (auto* v : {&dg, &db, &dwte, &dwpe, &dbias, &ss})
      res[k].insert(res[k].end(), v->begin(), v->end());
  }
  check(std::memcmp(res[0].data(), res[1].data(), res[0].size() * sizeof(float)) == 0,
        "reductions bit-identical for 1 and 2 threads");
}

void test_errors() {
  float x[4] = {0}, m[1], r[1];
  check(bj_cpu_layernorm_forward(x, m, r, nullptr, x, nullptr, x, x, 1, 0, 1e-5f, nullptr) ==
            BJ_ERR_INVALID,
        "layernorm C = 0 is invalid");
  check(std::strstr(bj_cpu_last_error(), "bj_cpu_layernorm_forward: C must be > 0") != nullptr,
        "layernorm error message names the op");
  check(bj_cpu_fill(nullptr, 4, 0.f, nullptr) == BJ_ERR_INVALID, "fill NULL is invalid");
  int32_t ids[2] = {0, 5};
  check(bj_cpu_embeddings_forward(x, ids, nullptr, x, x, x, 1, 2, 1, 4, 2, 1, nullptr) ==
            BJ_ERR_INVALID,
        "embedding id >= V is invalid");
}
}  // namespace

int main() {
  std::printf("bj_cpu_num_threads() = %d\n", bj_cpu_num_threads());
  test_gelu_tanh();
  test_layernorm();
  test_losses();
  test_optimizer();
  test_dropout();
  test_attention();
  test_philox_batch();
  test_gelu_accuracy();
  test_attention_blocked();
  test_determinism();
  test_errors();
  if (g_failures) {
    std::printf("%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("all CPU smoke checks passed\n");
  return 0;
}
