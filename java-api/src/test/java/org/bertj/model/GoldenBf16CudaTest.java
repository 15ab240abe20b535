package org.bertj.model;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.bertj.backend.Backend;
import org.bertj.backend.Device;
import org.junit.jupiter.api.Test;

/** {@link GoldenBf16Test} on the CUDA backend (bf16 tensor-core GEMMs); skipped without a GPU. */
class GoldenBf16CudaTest {
  @Test
  void bf16AgreesWithTransformersOnCuda() {
    Backend be;
    try {
      be = Backend.create(Device.CUDA);
    } catch (IllegalStateException e) {
      assumeTrue(false, "skipped: " + e.getMessage());
      return;
    }
    try (Backend b = be) {
      GoldenBf16Test.run(b);
    }
  }
}
