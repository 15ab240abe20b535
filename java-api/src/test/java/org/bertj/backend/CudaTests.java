package org.bertj.backend;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** For the GPU tests: the CUDA backend, or a visible skip (a JUnit assumption) without a GPU. */
public final class CudaTests {
  private CudaTests() {}

  /** Backend.create(CUDA), or skips the calling test, naming why. */
  public static Backend backendOrSkip() {
    try {
      return Backend.create(Device.CUDA);
    } catch (IllegalStateException e) {
      assumeTrue(false, "skipped: " + e.getMessage());
      throw new AssertionError("unreachable");
    }
  }
}
