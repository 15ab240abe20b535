package org.bertj.model;


import org.bertj.backend.Backend;
import org.bertj.backend.CudaTests;
import org.junit.jupiter.api.Test;

/**
 * Tier 3 on the GPU: the whole model on the CUDA backend against the tiny-bert golden files,
 * with the CPU test's bounds. Skipped, visibly, where no CUDA device answers.
 */
class GoldenParityCudaTest {
  @Test
  void forwardBackwardAndAdamWMatchTransformersOnCuda() {
    try (Backend b = CudaTests.backendOrSkip()) {
      GoldenParityTest.run(b); // the packed path (padding removal)
      GoldenParityTest.run(b, false); // the padded path
    }
  }
}
