package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** embeddings_forward / embeddings_backward vs the double reference and finite differences. */
class OpEmbeddingsTest extends OpTestBase {

  /** b, t, c, vocab, positions, types, token types given. */
  static Stream<Arguments> shapes() {
    return Stream.of(
        Arguments.of(1, 1, 8, 3, 1, 1, false),      // batch 1, seq 1
        Arguments.of(2, 5, 13, 11, 7, 2, true),     // C not a multiple of 8
        Arguments.of(3, 7, 37, 50, 9, 2, true),
        Arguments.of(4, 16, 64, 5, 16, 3, true),    // few ids: many repeats in the scatter-add
        Arguments.of(2, 128, 130, 300, 512, 2, true)); // over the OpenMP threshold
  }

  @ParameterizedTest(name = "B={0} T={1} C={2} V={3} P={4} TV={5} tt={6}")
  @MethodSource("shapes")
  void forwardAndBackwardMatchReference(int b, int t, int c, int v, int p, int tv, boolean withTt) {
    Random r = new Random(31L * b + 7L * t + c);
    int n = b * t;
    int[] ids = randInts(r, n, v);
    int[] tt = withTt ? randInts(r, n, tv) : null;
    float[] wte = randn(r, v * c), wpe = randn(r, p * c), wtt = randn(r, tv * c);
    float[] dout = randn(r, n * c);
    float[] g0te = randn(r, v * c), g0pe = randn(r, p * c), g0tt = randn(r, tv * c);
    String tag = "emb B" + b + " T" + t + " C" + c;
    try (Arena a = new Arena(be)) {
      Tensor out = a.f32(n, c);
      Tensor tIds = a.of(ids), tTt = withTt ? a.of(tt) : null;
      Tensor tWte = a.of(wte).reshape(v, c), tWpe = a.of(wpe).reshape(p, c),
          tWtt = a.of(wtt).reshape(tv, c);
      be.embeddingsForward(out, tIds, tTt, tWte, tWpe, tWtt, b, t);
      assertClose(tag + " fwd", out.toFloatArray(),
          OpRef.embeddings(ids, tt, wte, wpe, wtt, b, t, c), FWD_TOL);

      // Backward accumulates ("+=") into non-zero gradients.
      Tensor dte = a.of(g0te).reshape(v, c), dpe = a.of(g0pe).reshape(p, c),
          dtt = a.of(g0tt).reshape(tv, c);
      be.embeddingsBackward(dte, dpe, dtt, a.of(dout), tIds, tTt, b, t);
      double[] rte = toDouble(g0te), rpe = toDouble(g0pe), rtt = toDouble(g0tt);
      OpRef.embeddingsBackward(rte, rpe, rtt, dout, ids, tt, b, t, c);
      assertClose(tag + " dwte", dte.toFloatArray(), rte, BWD_TOL);
      assertClose(tag + " dwpe", dpe.toFloatArray(), rpe, BWD_TOL);
      assertClose(tag + " dwtt", dtt.toFloatArray(), rtt, BWD_TOL);

      // dwtt may be null; dwte and dwpe come out the same.
      Tensor dte2 = a.f32(v, c), dpe2 = a.f32(p, c);
      be.embeddingsBackward(dte2, dpe2, null, a.of(dout), tIds, tTt, b, t);
      double[] zte = new double[v * c], zpe = new double[p * c];
      OpRef.embeddingsBackward(zte, zpe, null, dout, ids, tt, b, t, c);
      assertClose(tag + " dwte (no dwtt)", dte2.toFloatArray(), zte, BWD_TOL);
      assertClose(tag + " dwpe (no dwtt)", dpe2.toFloatArray(), zpe, BWD_TOL);
    }
  }

  @Test
  void backwardMatchesFiniteDifferences() {
    int b = 2, t = 3, c = 11, v = 5, p = 4, tv = 2, n = b * t;
    Random r = new Random(5);
    int[] ids = randInts(r, n, v);
    int[] tt = randInts(r, n, tv);
    float[] wte = randn(r, v * c), wpe = randn(r, p * c), wtt = randn(r, tv * c);
    float[] projF = randn(r, n * c);
    double[] proj = toDouble(projF);
    try (Arena a = new Arena(be)) {
      Tensor out = a.f32(n, c), tIds = a.of(ids), tTt = a.of(tt);
      Tensor tWte = a.of(wte).reshape(v, c), tWpe = a.of(wpe).reshape(p, c),
          tWtt = a.of(wtt).reshape(tv, c);
      Tensor dte = a.f32(v, c), dpe = a.f32(p, c), dtt = a.f32(tv, c);
      be.embeddingsBackward(dte, dpe, dtt, a.of(projF), tIds, tTt, b, t);
      // L = sum proj . out as a function of one table at a time.
      Tensor[] tables = {tWte, tWpe, tWtt};
      float[][] values = {wte, wpe, wtt};
      float[][] grads = {dte.toFloatArray(), dpe.toFloatArray(), dtt.toFloatArray()};
      String[] names = {"dwte", "dwpe", "dwtt"};
      for (int k = 0; k < 3; k++) {
        Tensor table = tables[k];
        float[] orig = values[k];
        assertGradFd("emb " + names[k], grads[k], orig.clone(), 1e-2f, 60, r, x -> {
          table.copyFrom(x);
          be.embeddingsForward(out, tIds, tTt, tWte, tWpe, tWtt, b, t);
          return dot(proj, out.toFloatArray());
        });
        table.copyFrom(orig);
      }
    }
  }

  @Test
  void idOutsideVocabularyIsAnError() {
    try (Arena a = new Arena(be)) {
      Tensor wte = a.f32(4, 8), wpe = a.f32(2, 8), wtt = a.f32(1, 8), out = a.f32(2, 8);
      NativeException e = assertThrows(NativeException.class,
          () -> be.embeddingsForward(out, a.of(new int[] {1, 4}), null, wte, wpe, wtt, 1, 2));
      assertEquals(1, e.status());
      assertThrows(NativeException.class, () -> be.embeddingsForward(out,
          a.of(new int[] {1, 2}), a.of(new int[] {0, 1}), wte, wpe, wtt, 1, 2));
    }
  }
}
