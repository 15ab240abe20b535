package org.bertj.backend;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/**
 * {@link GraphCaptureTest}'s rules on the CUDA backend (stream capture, CUDA graphs). Skipped,
 * visibly, where no CUDA device answers.
 */
class GraphCudaTest {
  static Backend cuda() {
    try {
      return Backend.create(Device.CUDA);
    } catch (IllegalStateException e) {
      assumeTrue(false, "skipped: " + e.getMessage());
      return null;
    }
  }

  @Test
  void capturedOpsRunOnlyOnReplayOnCuda() {
    try (Backend be = cuda()) {
      GraphCaptureTest.capturedOpsRunOnReplay(be);
    }
  }

  @Test
  void hostWorkInsideACaptureIsRefusedOnCuda() {
    try (Backend be = cuda()) {
      GraphCaptureTest.hostWorkIsRefused(be);
    }
  }

  @Test
  void aFreeInvalidatesGraphsOnCuda() {
    try (Backend be = cuda()) {
      GraphCaptureTest.aFreeInvalidates(be);
    }
  }

  @Test
  void replaysReadTheStepScalarsOnCuda() {
    try (Backend be = cuda()) {
      GraphCaptureTest.replaysReadTheStepScalars(be);
    }
  }
}
