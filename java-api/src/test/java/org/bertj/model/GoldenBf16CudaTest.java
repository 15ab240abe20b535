package org.bertj.model;


import org.bertj.backend.Backend;
import org.bertj.backend.CudaTests;
import org.junit.jupiter.api.Test;

/** {@link GoldenBf16Test} on the CUDA backend (bf16 tensor-core GEMMs); skipped without a GPU. */
class GoldenBf16CudaTest {
  @Test
  void bf16AgreesWithTransformersOnCuda() {
    try (Backend b = CudaTests.backendOrSkip()) {
      GoldenBf16Test.run(b);
    }
  }
}
