package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link Backend#useStepScalars} on the CPU backend: every op that takes a dropout seed, and
 * adamw's lr and step, read them from the step scalars while set ({@link StepScalarsChecks});
 * the packing and the checks of the tensor.
 */
class OpStepScalarsTest extends OpTestBase {
  @Test
  void packIsTheLittleEndianStruct() {
    assertArrayEquals(new int[] {0x55667788, 0x11223344, 0x3FC00000, 7},
        StepScalars.pack(0x1122334455667788L, 1.5f, 7));
    assertArrayEquals(new int[] {-1, -1, 0, 1}, StepScalars.pack(-1L, 0f, 1));
  }

  @Test
  void packChecksLrAndStep() {
    assertThrows(IllegalArgumentException.class, () -> StepScalars.pack(1, 1e-3f, 0));
    assertThrows(IllegalArgumentException.class, () -> StepScalars.pack(1, -1e-3f, 1));
    assertThrows(IllegalArgumentException.class, () -> StepScalars.pack(1, Float.NaN, 1));
  }

  @ParameterizedTest(name = "n={0}")
  @ValueSource(ints = {1027, 40_000}) // the second: the OpenMP path
  void dropout(int n) {
    StepScalarsChecks.dropout(be, n);
  }

  @ParameterizedTest(name = "n={0} c={1}")
  @CsvSource({"9,64", "5,13"})
  void dropoutLayerNorm(int n, int c) {
    StepScalarsChecks.dropoutLayerNorm(be, n, c);
  }

  @ParameterizedTest(name = "lowp={0} b={1} t={2} nh={3} d={4} offset={5}")
  @CsvSource({"false,2,32,2,64,0", "false,1,19,2,32,1", "false,2,20,1,16,0",
      "true,2,40,2,64,0", "true,1,19,2,32,2"})
  void attention(boolean lowp, int b, int t, int nh, int d, long offset) {
    StepScalarsChecks.attention(be, lowp, b, t, nh, d, offset);
  }

  @ParameterizedTest(name = "n={0}")
  @ValueSource(ints = {1031, 40_000})
  void adamw(int n) {
    StepScalarsChecks.adamw(be, n);
  }

  @Test
  void onlyAFourIntTensorOfThisBackendAligned() {
    try (Arena a = new Arena(be); CpuBackend other = new CpuBackend()) {
      assertThrows(IllegalArgumentException.class, () -> be.useStepScalars(a.f32(4)));
      assertThrows(IllegalArgumentException.class, () -> be.useStepScalars(a.of(new int[3])));
      assertThrows(IllegalArgumentException.class, () -> be.useStepScalars(a.of(new int[5])));
      try (Tensor t = other.alloc(DType.I32, StepScalars.INTS)) {
        assertThrows(IllegalArgumentException.class, () -> be.useStepScalars(t));
      }
      try (Tensor odd = a.of(new int[5]).view(1, StepScalars.INTS)) {
        assertThrows(IllegalArgumentException.class, () -> be.useStepScalars(odd));
      }
      Tensor closed = a.of(new int[StepScalars.INTS]);
      closed.close();
      assertThrows(IllegalStateException.class, () -> be.useStepScalars(closed));
      assertNull(be.stepScalars());
    }
  }

  @Test
  void closingTheSetTensorFailsTheOpsUntilCleared() {
    try (Arena a = new Arena(be)) {
      Tensor u = a.f32(8);
      Tensor sc = a.of(StepScalars.pack(1, 0f, 1));
      be.useStepScalars(sc);
      sc.close();
      assertThrows(IllegalStateException.class, () -> be.philoxUniform(u, 1, 0));
      be.useStepScalars(null);
      be.philoxUniform(u, 1, 0);
    }
  }
}
