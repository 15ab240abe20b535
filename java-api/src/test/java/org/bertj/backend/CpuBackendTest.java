package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Memory, copies, GEMM and argument checks of the CPU backend. */
class CpuBackendTest {
  private CpuBackend be;

  @BeforeEach
  void open() {
    be = new CpuBackend();
  }

  @AfterEach
  void noLeaks() {
    assertEquals(0, be.liveTensors(), "tensors left open");
    assertEquals(0, be.liveBytes(), "bytes left allocated");
    be.close();
  }

  @Test
  void allocIsZeroedAndRoundTrips() {
    try (Tensor t = be.alloc(DType.F32, 3, 5)) {
      assertArrayEquals(new float[15], t.toFloatArray());
      float[] v = new float[15];
      for (int i = 0; i < v.length; i++) {
        v[i] = i * 0.5f - 3f;
      }
      t.copyFrom(v);
      assertArrayEquals(v, t.toFloatArray());
      try (Tensor view = t.view(5, 2, 5)) {
        float[] w = view.toFloatArray();
        assertEquals(v[5], w[0]);
        assertEquals(v[14], w[9]);
      }
      be.fill(t, 2.5f);
      for (float x : t.toFloatArray()) {
        assertEquals(2.5f, x);
      }
    }
    try (Tensor t = be.alloc(DType.I32, 4)) {
      t.copyFrom(new int[] {1, -2, 3, Integer.MAX_VALUE});
      assertArrayEquals(new int[] {1, -2, 3, Integer.MAX_VALUE}, t.toIntArray());
    }
  }

  @Test
  void gemmMatchesDoubleReferenceForAllTransposes() {
    Random r = new Random(7);
    int m = 13, n = 7, k = 29;
    for (boolean ta : new boolean[] {false, true}) {
      for (boolean tb : new boolean[] {false, true}) {
        float[] a = rand(r, m * k);
        float[] b = rand(r, k * n);
        float[] c0 = rand(r, m * n);
        try (Tensor ta_ = be.alloc(DType.F32, m * k).copyFrom(a);
            Tensor tb_ = be.alloc(DType.F32, k * n).copyFrom(b);
            Tensor tc = be.alloc(DType.F32, m * n).copyFrom(c0)) {
          be.gemm(ta, tb, m, n, k, 0.5f, ta_, ta ? m : k, tb_, tb ? k : n, 2f, tc, n);
          float[] c = tc.toFloatArray();
          for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
              double s = 0;
              for (int p = 0; p < k; p++) {
                double av = ta ? a[p * m + i] : a[i * k + p];
                double bv = tb ? b[j * k + p] : b[p * n + j];
                s += av * bv;
              }
              double want = 0.5 * s + 2 * c0[i * n + j];
              assertEquals(want, c[i * n + j], 1e-4, "ta=" + ta + " tb=" + tb + " at " + i + "," + j);
            }
          }
        }
      }
    }
  }

  @Test
  void badArgumentsAreJavaExceptions() {
    try (Tensor a = be.alloc(DType.F32, 4, 4); Tensor ids = be.alloc(DType.I32, 4)) {
      assertThrows(IllegalArgumentException.class,
          () -> be.gemm(false, false, 4, 4, 5, 1f, a, 5, a, 4, 0f, a, 4));
      assertThrows(IllegalArgumentException.class, () -> be.fill(ids, 1f));
      assertThrows(IllegalArgumentException.class, () -> be.alloc(DType.F32, 2, -1));
      assertThrows(NullPointerException.class, () -> be.tanhForward(null, a));
      assertThrows(IllegalArgumentException.class, () -> be.dropoutForward(a, a, 1f, 0, 0));
      Tensor v = a.view(0, 4);
      a.close();
      assertTrue(v.isClosed());
      assertThrows(IllegalStateException.class, () -> be.fill(v, 0f));
      assertThrows(IllegalStateException.class, v::address);
    }
  }

  @Test
  void nativeStatusBecomesNamedException() {
    try (Tensor logits = be.alloc(DType.F32, 2, 3); Tensor labels = be.alloc(DType.I32, 2);
        Tensor losses = be.alloc(DType.F32, 2)) {
      labels.copyFrom(new int[] {0, 7});
      NativeException e = assertThrows(NativeException.class,
          () -> be.crossEntropy(losses, null, logits, labels, 2, 3, 1f));
      assertTrue(e.getMessage().contains("crossEntropy"), e.getMessage());
      assertEquals(1, e.status());
    }
  }

  static float[] rand(Random r, int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) r.nextGaussian();
    }
    return v;
  }
}
