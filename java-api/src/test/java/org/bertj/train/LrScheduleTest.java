package org.bertj.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The schedules against transformers' get_*_schedule_with_warmup lambdas, written out here. */
class LrScheduleTest {

  /** transformers' _get_linear_schedule_with_warmup_lr_lambda. */
  static double hfLinear(int step, int warmup, int total) {
    if (step < warmup) {
      return (double) step / Math.max(1, warmup);
    }
    return Math.max(0.0, (double) (total - step) / Math.max(1, total - warmup));
  }

  /** transformers' _get_cosine_schedule_with_warmup_lr_lambda, num_cycles = 0.5. */
  static double hfCosine(int step, int warmup, int total) {
    if (step < warmup) {
      return (double) step / Math.max(1, warmup);
    }
    double progress = (double) (step - warmup) / Math.max(1, total - warmup);
    return Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * 0.5 * 2.0 * progress)));
  }

  @Test
  void linearMatchesTransformers() {
    LrSchedule s = new LrSchedule(LrSchedule.Kind.LINEAR, 2e-5, 3, 20);
    for (int k = 0; k <= 21; k++) {
      assertEquals(2e-5 * hfLinear(k, 3, 20), s.lr(k), 1e-18, "step " + k);
    }
    // spot values: lr 0 at the first update, peak after warmup, 0 at the end
    assertEquals(0.0, s.lr(0));
    assertEquals(2e-5 / 3, s.lr(1), 1e-18);
    assertEquals(2e-5, s.lr(3), 1e-18);
    assertEquals(2e-5 * 7 / 17, s.lr(13), 1e-18);
    assertEquals(0.0, s.lr(20));
  }

  @Test
  void cosineMatchesTransformers() {
    LrSchedule s = new LrSchedule(LrSchedule.Kind.COSINE, 1.0, 4, 24);
    for (int k = 0; k <= 25; k++) {
      assertEquals(hfCosine(k, 4, 24), s.lr(k), 1e-15, "step " + k);
    }
    assertEquals(0.5, s.lr(14), 1e-15); // half-way through the decay
    assertEquals(0.0, s.lr(24), 1e-15);
  }

  @Test
  void constantWithWarmup() {
    LrSchedule s = new LrSchedule(LrSchedule.Kind.CONSTANT, 1.0, 2, 10);
    assertEquals(0.0, s.lr(0));
    assertEquals(0.5, s.lr(1));
    for (int k = 2; k < 12; k++) {
      assertEquals(1.0, s.lr(k));
    }
    LrSchedule none = new LrSchedule(LrSchedule.Kind.LINEAR, 1.0, 0, 4);
    assertEquals(1.0, none.lr(0)); // no warmup: full rate at once
    assertEquals(0.25, none.lr(3));
  }

  @Test
  void warmupStepsAreCeilOfRatio() {
    assertEquals(114, LrSchedule.warmupSteps(0.06, 1895)); // 113.7 -> 114, as transformers
    assertEquals(0, LrSchedule.warmupSteps(0.0, 100));
    assertEquals(1, LrSchedule.warmupSteps(0.001, 100));
    assertEquals(10, LrSchedule.warmupSteps(0.1, 100));
    assertThrows(IllegalArgumentException.class, () -> LrSchedule.warmupSteps(1.5, 10));
    assertEquals(LrSchedule.Kind.COSINE, LrSchedule.Kind.parse("Cosine"));
    assertThrows(IllegalArgumentException.class, () -> LrSchedule.Kind.parse("step"));
  }
}
