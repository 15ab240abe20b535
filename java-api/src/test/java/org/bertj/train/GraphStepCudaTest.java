package org.bertj.train;


import java.nio.file.Path;
import org.bertj.backend.Backend;
import org.bertj.backend.CudaTests;
import org.bertj.backend.Precision;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link GraphStepTest} on CUDA: training steps replayed from CUDA graphs against eager steps
 * (within 1e-4 relative: reductions with atomics may round differently between runs). Skipped,
 * visibly, where no CUDA device answers.
 */
class GraphStepCudaTest {
  @TempDir Path tmp;

  @ParameterizedTest
  @EnumSource(value = Precision.class, names = {"FP32", "BF16"})
  void replayedStepsEqualEagerStepsOnCuda(Precision p) {
    try (Backend b = CudaTests.backendOrSkip()) {
      GraphStepTest.compare(b, TinyTask.modelDir(tmp.resolve("tiny"), 0.1), p, false, 1e-4);
    }
  }
}
