package org.bertj.backend;

/**
 * The per-step scalars of {@link Backend#useStepScalars} as ints: the little-endian layout of
 * bertj.h's {@code bj_step_scalars} ({@code uint64 seed; float lr; int32 step}, 16 bytes), to
 * upload into an I32 tensor of {@link #INTS} elements before each step (or graph replay).
 */
public final class StepScalars {
  /** The ints of {@link #pack}: the element count of a step-scalars tensor. */
  public static final int INTS = 4;

  private StepScalars() {}

  /**
   * {lo32(seed), hi32(seed), the raw bits of lr, step}: the dropout seed, AdamW's learning rate
   * and AdamW's step (counting from 1). Checks lr >= 0 and step >= 1 here, because the CUDA
   * kernels read them on the device, where nothing can be checked.
   */
  public static int[] pack(long seed, float lr, int step) {
    if (!(lr >= 0f)) {
      throw new IllegalArgumentException("AdamW learning rate must be >= 0, got " + lr);
    }
    if (step < 1) {
      throw new IllegalArgumentException("AdamW step counts from 1, got " + step);
    }
    return new int[] {(int) seed, (int) (seed >>> 32), Float.floatToRawIntBits(lr), step};
  }
}
