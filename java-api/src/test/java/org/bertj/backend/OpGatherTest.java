package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** gather_rows (padding removal and its inverse, the scatter with the inverse index). */
class OpGatherTest extends OpTestBase {

  @ParameterizedTest(name = "m={0} c={1} nIn={2}")
  @CsvSource({"1,1,1", "5,3,7", "9,8,4", "33,36,40", "700,64,500"}) // the last: over OpenMP's
  void rowsAreCopiedAndMinusOneRowsZero(int m, int c, int nIn) {
    Random r = new Random(m * 31 + c);
    float[] in = randn(r, nIn * c);
    int[] idx = new int[m];
    for (int i = 0; i < m; i++) {
      idx[i] = r.nextInt(nIn + 1) - 1; // -1 .. nIn-1
    }
    idx[0] = -1;
    try (Arena a = new Arena(be)) {
      Tensor out = a.of(filled(m * c, 7f)); // garbage that -1 rows must overwrite
      be.gatherRows(out, a.of(in).reshape(nIn, c), a.of(idx), m, c);
      float[] want = new float[m * c];
      for (int i = 0; i < m; i++) {
        if (idx[i] >= 0) {
          System.arraycopy(in, idx[i] * c, want, i * c, c);
        }
      }
      assertArrayEquals(rawBits(want), rawBits(out.toFloatArray()));
    }
  }

  @Test
  void inverseIndexScattersBack() {
    int b = 3, t = 7, c = 5;
    int[] len = {7, 3, 1};
    int n = 11;
    int[] idx = new int[n];
    int[] inv = new int[b * t];
    int k = 0;
    for (int i = 0; i < b; i++) {
      for (int j = 0; j < t; j++) {
        inv[i * t + j] = j < len[i] ? k : -1;
        if (j < len[i]) {
          idx[k++] = i * t + j;
        }
      }
    }
    assertEquals(n, k);
    float[] padded = randn(new Random(5), b * t * c);
    try (Arena a = new Arena(be)) {
      Tensor packed = a.f32(n, c), back = a.f32(b * t, c);
      be.gatherRows(packed, a.of(padded), a.of(idx), n, c);
      be.gatherRows(back, packed, a.of(inv), b * t, c);
      float[] want = padded.clone();
      for (int i = 0; i < b * t; i++) {
        if (inv[i] < 0) {
          java.util.Arrays.fill(want, i * c, i * c + c, 0f);
        }
      }
      assertArrayEquals(want, back.toFloatArray());
    }
  }

  @Test
  void badArgumentsAreRejected() {
    try (Arena a = new Arena(be)) {
      Tensor in = a.f32(4, 3), out = a.f32(2, 3);
      float[] before = filled(6, 7f);
      out.copyFrom(before);
      // an index past in's rows: the native check, nothing written
      NativeException e = assertThrows(NativeException.class,
          () -> be.gatherRows(out, in, a.of(new int[] {0, 4}), 2, 3));
      assertEquals(true, e.getMessage().contains("gather"), e.getMessage());
      assertArrayEquals(before, out.toFloatArray());
      // sizes and dtypes
      assertThrows(IllegalArgumentException.class,
          () -> be.gatherRows(out, in, a.of(new int[] {0}), 2, 3));
      assertThrows(IllegalArgumentException.class,
          () -> be.gatherRows(out, a.f32(5), a.of(new int[] {0, 1}), 2, 3));
      assertThrows(IllegalArgumentException.class,
          () -> be.gatherRows(out, in, a.f32(2), 2, 3));
      assertThrows(IllegalArgumentException.class,
          () -> be.gatherRows(a.f32(7), in, a.of(new int[] {0, 1}), 2, 3));
      assertThrows(IllegalArgumentException.class,
          () -> be.gatherRows(out, in, a.of(new int[0]), 0, 3));
      // out overlapping in
      Tensor buf = a.f32(12);
      assertThrows(IllegalArgumentException.class,
          () -> be.gatherRows(buf.view(3, 6), buf.view(0, 6), a.of(new int[] {0, 1}), 2, 3));
    }
  }

  private static float[] filled(int n, float v) {
    float[] f = new float[n];
    java.util.Arrays.fill(f, v);
    return f;
  }
}
