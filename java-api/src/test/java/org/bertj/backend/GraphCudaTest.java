package org.bertj.backend;

import org.junit.jupiter.api.Test;

/**
 * {@link GraphCaptureTest}'s rules on the CUDA backend (stream capture, CUDA graphs). Skipped,
 * visibly, where no CUDA device answers.
 */
class GraphCudaTest {
  @Test
  void capturedOpsRunOnlyOnReplayOnCuda() {
    try (Backend be = CudaTests.backendOrSkip()) {
      GraphCaptureTest.capturedOpsRunOnReplay(be);
    }
  }

  @Test
  void hostWorkInsideACaptureIsRefusedOnCuda() {
    try (Backend be = CudaTests.backendOrSkip()) {
      GraphCaptureTest.hostWorkIsRefused(be);
    }
  }

  @Test
  void aFreeInvalidatesGraphsOnCuda() {
    try (Backend be = CudaTests.backendOrSkip()) {
      GraphCaptureTest.aFreeInvalidates(be);
    }
  }

  @Test
  void replaysReadTheStepScalarsOnCuda() {
    try (Backend be = CudaTests.backendOrSkip()) {
      GraphCaptureTest.replaysReadTheStepScalars(be);
    }
  }
}
