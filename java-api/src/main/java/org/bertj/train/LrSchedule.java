package org.bertj.train;

import java.util.Locale;

/**
 * Learning-rate schedules with a linear warmup, as Hugging Face's
 * {@code get_{linear,cosine,constant}_schedule_with_warmup}: the k-th optimizer update
 * (k = 0, 1, ...) uses {@code base * factor(k)}, where for {@code k < warmup} the factor is
 * {@code k / max(1, warmup)} (so the first update has lr 0 when there is a warmup) and after it
 *
 * <ul>
 *   <li>linear: {@code max(0, (total - k) / max(1, total - warmup))};
 *   <li>cosine: {@code max(0, 0.5 * (1 + cos(pi * (k - warmup) / max(1, total - warmup))))}
 *       (half a cycle, transformers' default {@code num_cycles = 0.5});
 *   <li>constant: 1.
 * </ul>
 */
public final class LrSchedule {

  /** The decay after the warmup. */
  public enum Kind {
    LINEAR,
    COSINE,
    CONSTANT;

    /** Parses {@code linear|cosine|constant} (case-insensitive), naming a bad value. */
    public static Kind parse(String s) {
      try {
        return valueOf(s.trim().toUpperCase(Locale.ROOT));
      } catch (IllegalArgumentException | NullPointerException e) {
        throw new IllegalArgumentException("unknown scheduler '" + s
            + "': expected linear, cosine or constant");
      }
    }

    /** The lower-case name used on the command line and in state files. */
    public String cliName() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  private final Kind kind;
  private final double base;
  private final int warmup;
  private final int total;

  /**
   * @param kind the decay
   * @param base the peak learning rate
   * @param warmupSteps the updates of linear warmup (>= 0)
   * @param totalSteps the updates of the whole run (>= 1)
   */
  public LrSchedule(Kind kind, double base, int warmupSteps, int totalSteps) {
    if (warmupSteps < 0 || totalSteps < 1) {
      throw new IllegalArgumentException("warmup " + warmupSteps + " must be >= 0 and total "
          + totalSteps + " >= 1");
    }
    this.kind = kind;
    this.base = base;
    this.warmup = warmupSteps;
    this.total = totalSteps;
  }

  /** Hugging Face's {@code get_warmup_steps}: {@code ceil(ratio * total)}. */
  public static int warmupSteps(double ratio, int totalSteps) {
    if (!(ratio >= 0 && ratio <= 1)) {
      throw new IllegalArgumentException("warmup ratio " + ratio + " must be in [0, 1]");
    }
    return (int) Math.ceil(ratio * totalSteps);
  }

  /** The multiplier of the base rate at update k (0-based). */
  public double factor(int k) {
    if (k < warmup) {
      return (double) k / Math.max(1, warmup);
    }
    return switch (kind) {
      case LINEAR -> Math.max(0.0, (double) (total - k) / Math.max(1, total - warmup));
      case COSINE -> {
        double progress = (double) (k - warmup) / Math.max(1, total - warmup);
        yield Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * 2.0 * 0.5 * progress)));
      }
      case CONSTANT -> 1.0;
    };
  }

  /** The learning rate of update k (0-based). */
  public double lr(int k) {
    return base * factor(k);
  }

  public Kind kind() {
    return kind;
  }

  public double base() {
    return base;
  }

  public int warmupSteps() {
    return warmup;
  }

  public int totalSteps() {
    return total;
  }

  @Override
  public String toString() {
    return kind.cliName() + "(lr " + base + ", warmup " + warmup + ", total " + total + ")";
  }
}
