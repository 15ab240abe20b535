package org.bertj.backend;

/**
 * Plain Java double-precision references of every op in {@code native/include/bertj.h}, written
 * from the header's formulas (not from the kernels). Inputs are the fp32 arrays the kernels see;
 * everything after that is double. Gradient conventions follow the header: activation gradients
 * are returned fresh, parameter gradients are added into the arrays passed in.
 */
final class OpRef {
  private OpRef() {}

  // ---- embeddings ----

  /** out (B*T, C) = wte[ids] + wpe[r % T] + wtt[tt] (tt null = type 0). */
  static double[] embeddings(int[] ids, int[] tt, float[] wte, float[] wpe, float[] wtt, int b,
      int t, int c) {
    double[] out = new double[b * t * c];
    for (int r = 0; r < b * t; r++) {
      int type = tt == null ? 0 : tt[r];
      for (int k = 0; k < c; k++) {
        out[r * c + k] = (double) wte[ids[r] * c + k] + wpe[(r % t) * c + k] + wtt[type * c + k];
      }
    }
    return out;
  }

  /** dwte[ids] += dout, dwpe[pos] += dout, dwtt[tt] += dout (dwtt may be null). */
  static void embeddingsBackward(double[] dwte, double[] dwpe, double[] dwtt, float[] dout,
      int[] ids, int[] tt, int b, int t, int c) {
    for (int r = 0; r < b * t; r++) {
      int type = tt == null ? 0 : tt[r];
      for (int k = 0; k < c; k++) {
        double g = dout[r * c + k];
        dwte[ids[r] * c + k] += g;
        dwpe[(r % t) * c + k] += g;
        if (dwtt != null) {
          dwtt[type * c + k] += g;
        }
      }
    }
  }

  // ---- layer norm ----

  /** Forward results: out (N, C), mean (N), rstd (N), h (N, C). */
  record LayerNorm(double[] out, double[] mean, double[] rstd, double[] h) {}

  static LayerNorm layerNorm(float[] x, float[] residual, float[] gamma, float[] beta, int n,
      int c, float eps) {
    return layerNorm(OpTestBase.toDouble(x), residual, gamma, beta, n, c, eps);
  }

  /** The same with a double input x (e.g. a dropout output kept in double). */
  static LayerNorm layerNorm(double[] x, float[] residual, float[] gamma, float[] beta, int n,
      int c, float eps) {
    double[] h = new double[n * c];
    double[] out = new double[n * c];
    double[] mean = new double[n];
    double[] rstd = new double[n];
    for (int i = 0; i < n; i++) {
      double s = 0;
      for (int k = 0; k < c; k++) {
        h[i * c + k] = (double) x[i * c + k] + (residual == null ? 0 : residual[i * c + k]);
        s += h[i * c + k];
      }
      double m = s / c;
      double v = 0;
      for (int k = 0; k < c; k++) {
        double d = h[i * c + k] - m;
        v += d * d;
      }
      double rs = 1 / Math.sqrt(v / c + eps);
      for (int k = 0; k < c; k++) {
        out[i * c + k] = (h[i * c + k] - m) * rs * gamma[k] + beta[k];
      }
      mean[i] = m;
      rstd[i] = rs;
    }
    return new LayerNorm(out, mean, rstd, h);
  }

  /** Returns dh (N, C); dgamma, dbeta (C) accumulated. h is the (double) input of the forward. */
  static double[] layerNormBackward(double[] dgamma, double[] dbeta, float[] dout, double[] h,
      float[] gamma, int n, int c, float eps) {
    double[] dh = new double[n * c];
    for (int i = 0; i < n; i++) {
      double s = 0;
      for (int k = 0; k < c; k++) {
        s += h[i * c + k];
      }
      double m = s / c;
      double v = 0;
      for (int k = 0; k < c; k++) {
        v += (h[i * c + k] - m) * (h[i * c + k] - m);
      }
      double rs = 1 / Math.sqrt(v / c + eps);
      double mg = 0, mgx = 0;
      for (int k = 0; k < c; k++) {
        double xhat = (h[i * c + k] - m) * rs;
        double g = (double) dout[i * c + k] * gamma[k];
        mg += g;
        mgx += g * xhat;
        dgamma[k] += dout[i * c + k] * xhat;
        dbeta[k] += dout[i * c + k];
      }
      mg /= c;
      mgx /= c;
      for (int k = 0; k < c; k++) {
        double xhat = (h[i * c + k] - m) * rs;
        dh[i * c + k] = rs * ((double) dout[i * c + k] * gamma[k] - mg - xhat * mgx);
      }
    }
    return dh;
  }

  // ---- bias, GELU, tanh ----

  /** x (N, C) + bias (C); bias null = x. */
  static double[] biasAdd(float[] x, float[] bias, int n, int c) {
    double[] out = new double[n * c];
    for (int i = 0; i < n * c; i++) {
      out[i] = (double) x[i] + (bias == null ? 0 : bias[i % c]);
    }
    return out;
  }

  /** acc (C) += column sums of d (N, C). */
  static void columnSums(double[] acc, double[] d, int n, int c) {
    for (int i = 0; i < n * c; i++) {
      acc[i % c] += d[i];
    }
  }

  /** erf to ~1e-13: Taylor series below 2.5, Laplace continued fraction of erfc above. */
  static double erf(double x) {
    double ax = Math.abs(x);
    double r;
    if (ax < 2.5) {
      double term = ax, sum = ax, x2 = ax * ax;
      for (int n = 1; n < 200; n++) {
        term *= -x2 / n;
        double add = term / (2 * n + 1);
        sum += add;
        if (Math.abs(add) < 1e-17 * Math.abs(sum)) {
          break;
        }
      }
      r = 2 / Math.sqrt(Math.PI) * sum;
    } else {
      // erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...))))
      double f = ax;
      for (int k = 300; k >= 1; k--) {
        f = ax + (k / 2.0) / f;
      }
      r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
    }
    return x < 0 ? -r : r;
  }

  static double gelu(double x) {
    return 0.5 * x * (1 + erf(x / Math.sqrt(2)));
  }

  static double geluGrad(double x) {
    return 0.5 * (1 + erf(x / Math.sqrt(2))) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  }

  // ---- dropout: Philox-4x32-10 as in native/include/bertj_philox.h ----

  /** Philox-4x32-10 of counter (c0, c1, c2, c3) and key (k0, k1); returns the 4 output words. */
  static int[] philox4x32x10(int c0, int c1, int c2, int c3, int k0, int k1) {
    for (int round = 0; round < 10; round++) {
      long p0 = 0xD2511F53L * (c0 & 0xFFFFFFFFL); // < 2^64: the low 64 bits are exact
      long p1 = 0xCD9E8D57L * (c2 & 0xFFFFFFFFL);
      int hi0 = (int) (p0 >>> 32), lo0 = (int) p0;
      int hi1 = (int) (p1 >>> 32), lo1 = (int) p1;
      int n0 = hi1 ^ c1 ^ k0;
      int n2 = hi0 ^ c3 ^ k1;
      c0 = n0;
      c1 = lo1;
      c2 = n2;
      c3 = lo0;
      k0 += 0x9E3779B9;
      k1 += 0xBB67AE85;
    }
    return new int[] {c0, c1, c2, c3};
  }

  /**
   * The dropout uniform of global element idx: one Philox call per group of 4 elements, counter
   * idx >>> 2, word idx & 3: (word >>> 8) * 2^-24, exact in fp32.
   */
  static float philoxUniform(long seed, long idx) {
    long g = idx >>> 2;
    int w = philox4x32x10((int) g, (int) (g >>> 32), 0, 0, (int) seed, (int) (seed >>> 32))[(int) (idx & 3)];
    return (float) (w >>> 8) * (1.0f / 16777216.0f);
  }

  static boolean keep(float p, long seed, long idx) {
    return philoxUniform(seed, idx) >= p;
  }

  // ---- attention ----

  /** out (B, T, C), lse (B, NH, T), P (B, NH, T, T) before dropout, factor keep/(1-p). */
  record Attention(double[] out, double[] lse, double[] probs, double[] dropFactor) {}

  static Attention attention(float[] qkv, int[] mask, int b, int t, int nh, int d, float p,
      long seed, long offset) {
    int c = nh * d, c3 = 3 * c;
    double scale = 1 / Math.sqrt(d);
    double[] out = new double[b * t * c];
    double[] lse = new double[b * nh * t];
    double[] probs = new double[b * nh * t * t];
    double[] fac = new double[b * nh * t * t];
    for (int bb = 0; bb < b; bb++) {
      boolean anyReal = false;
      for (int j = 0; j < t; j++) {
        anyReal |= mask == null || mask[bb * t + j] != 0;
      }
      for (int h = 0; h < nh; h++) {
        for (int i = 0; i < t; i++) {
          int row = (bb * nh + h) * t + i;
          double[] s = new double[t];
          double mx = Double.NEGATIVE_INFINITY;
          for (int j = 0; j < t; j++) {
            boolean real = mask == null || mask[bb * t + j] != 0;
            if (anyReal && !real) {
              s[j] = Double.NEGATIVE_INFINITY;
              continue;
            }
            double dot = 0;
            if (anyReal) {
              for (int k = 0; k < d; k++) {
                dot += (double) qkv[(bb * t + i) * c3 + h * d + k]
                    * qkv[(bb * t + j) * c3 + c + h * d + k];
              }
            }
            s[j] = anyReal ? scale * dot : 0; // no real key: T zero scores, uniform
            mx = Math.max(mx, s[j]);
          }
          double sum = 0;
          for (int j = 0; j < t; j++) {
            sum += Math.exp(s[j] - mx);
          }
          lse[row] = mx + Math.log(sum);
          for (int j = 0; j < t; j++) {
            double pr = Math.exp(s[j] - lse[row]);
            double f = keep(p, seed, offset + (long) row * t + j) ? 1 / (1 - (double) p) : 0;
            probs[row * t + j] = pr;
            fac[row * t + j] = f;
            for (int k = 0; k < d; k++) {
              out[(bb * t + i) * c + h * d + k] += pr * f * qkv[(bb * t + j) * c3 + 2 * c + h * d + k];
            }
          }
        }
      }
    }
    return new Attention(out, lse, probs, fac);
  }

  /**
   * dqkv (B, T, 3C) of L = sum dout . out, by the softmax chain rule on the reference
   * probabilities: dV = Pdrop^T dO; dPdrop = dO V^T; dP = dPdrop * f; dS = P (dP - sum_j P dP);
   * dQ = scale dS K; dK = scale dS^T Q. Rows with no real key have S constant: no dQ, dK.
   */
  static double[] attentionBackward(float[] dout, float[] qkv, int[] mask, int b, int t, int nh,
      int d, float p, long seed, long offset) {
    Attention a = attention(qkv, mask, b, t, nh, d, p, seed, offset);
    int c = nh * d, c3 = 3 * c;
    double scale = 1 / Math.sqrt(d);
    double[] dqkv = new double[b * t * c3];
    for (int bb = 0; bb < b; bb++) {
      boolean anyReal = false;
      for (int j = 0; j < t; j++) {
        anyReal |= mask == null || mask[bb * t + j] != 0;
      }
      for (int h = 0; h < nh; h++) {
        for (int i = 0; i < t; i++) {
          int row = (bb * nh + h) * t + i;
          double[] dP = new double[t];
          double rowDot = 0;
          for (int j = 0; j < t; j++) {
            double pr = a.probs()[row * t + j], f = a.dropFactor()[row * t + j];
            double dv = 0;
            for (int k = 0; k < d; k++) {
              double go = dout[(bb * t + i) * c + h * d + k];
              dqkv[(bb * t + j) * c3 + 2 * c + h * d + k] += pr * f * go;
              dv += go * qkv[(bb * t + j) * c3 + 2 * c + h * d + k];
            }
            dP[j] = dv * f;
            rowDot += pr * dP[j];
          }
          if (!anyReal) {
            continue;
          }
          for (int j = 0; j < t; j++) {
            double dS = a.probs()[row * t + j] * (dP[j] - rowDot);
            for (int k = 0; k < d; k++) {
              dqkv[(bb * t + i) * c3 + h * d + k] +=
                  scale * dS * qkv[(bb * t + j) * c3 + c + h * d + k];
              dqkv[(bb * t + j) * c3 + c + h * d + k] +=
                  scale * dS * qkv[(bb * t + i) * c3 + h * d + k];
            }
          }
        }
      }
    }
    return dqkv;
  }

  // ---- losses ----

  /** losses (B) and, into dlogits (B, L), the gradient times gradScale; label < 0 ignored. */
  static double[] crossEntropy(double[] dlogits, float[] logits, int[] labels, int b, int l,
      double gradScale) {
    double[] losses = new double[b];
    for (int i = 0; i < b; i++) {
      if (labels[i] < 0) {
        continue;
      }
      double mx = Double.NEGATIVE_INFINITY;
      for (int k = 0; k < l; k++) {
        mx = Math.max(mx, logits[i * l + k]);
      }
      double s = 0;
      for (int k = 0; k < l; k++) {
        s += Math.exp(logits[i * l + k] - mx);
      }
      double lse = mx + Math.log(s);
      losses[i] = lse - logits[i * l + labels[i]];
      for (int k = 0; k < l; k++) {
        dlogits[i * l + k] =
            (Math.exp(logits[i * l + k] - lse) - (k == labels[i] ? 1 : 0)) * gradScale;
      }
    }
    return losses;
  }

  /** BCE with logits: losses; dlogits = (sigmoid(x) - y) * gradScale. */
  static double[] bce(double[] dlogits, float[] x, float[] y, double gradScale) {
    double[] losses = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      double sig = 1 / (1 + Math.exp(-(double) x[i]));
      losses[i] = Math.max(x[i], 0) - (double) x[i] * y[i] + Math.log1p(Math.exp(-Math.abs(x[i])));
      dlogits[i] = (sig - y[i]) * gradScale;
    }
    return losses;
  }

  static double[] mse(double[] dpred, float[] x, float[] y, double gradScale) {
    double[] losses = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      double d = (double) x[i] - y[i];
      losses[i] = d * d;
      dpred[i] = 2 * d * gradScale;
    }
    return losses;
  }

  // ---- optimizer ----

  static double sumSquares(float[] x) {
    double s = 0;
    for (float v : x) {
      s += (double) v * v;
    }
    return s;
  }

  /**
   * One step of torch.optim.AdamW (single tensor, maximize=False, amsgrad=False) on double
   * state, gradient g * gradScale; weight decay only on [decayBegin, decayEnd).
   */
  static void adamwStep(double[] p, float[] g, double[] m, double[] v, int decayBegin,
      int decayEnd, double lr, double beta1, double beta2, double eps, double wd, int step,
      double gradScale) {
    double bc1 = 1 - Math.pow(beta1, step);
    double bc2 = 1 - Math.pow(beta2, step);
    for (int i = 0; i < p.length; i++) {
      double gi = g[i] * gradScale;
      if (i >= decayBegin && i < decayEnd) {
        p[i] *= 1 - lr * wd;
      }
      m[i] = beta1 * m[i] + (1 - beta1) * gi;
      v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
      double denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + eps;
      p[i] -= lr / bc1 * m[i] / denom;
    }
  }
}
