package org.bertj.model;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.bertj.backend.Backend;
import org.bertj.backend.Device;
import org.junit.jupiter.api.Test;

/**
 * Tier 3 on the GPU: the whole model on the CUDA backend against the tiny-bert golden files,
 * with the CPU test's bounds. Skipped, visibly, where no CUDA device answers.
 */
class GoldenParityCudaTest {
  @Test
  void forwardBackwardAndAdamWMatchTransformersOnCuda() {
    Backend be;
    try {
      be = Backend.create(Device.CUDA);
    } catch (IllegalStateException e) {
      assumeTrue(false, "skipped: " + e.getMessage());
      return;
    }
    try (Backend b = be) {
      GoldenParityTest.run(b); // the packed path (padding removal)
      GoldenParityTest.run(b, false); // the padded path
    }
  }
}
