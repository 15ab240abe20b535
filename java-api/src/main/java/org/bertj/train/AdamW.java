package org.bertj.train;

import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.Precision;
import org.bertj.backend.Tensor;
import org.bertj.model.Parameters;

/**
 * {@code torch.optim.AdamW} over a model's flat {@link Parameters}: one {@link Backend#adamw}
 * call per step. The moments m, v are flat buffers of the store's size. Weight decay applies to
 * {@code [decayBegin, decayEnd)}, by default {@code [0, nDecay)} (Linear weights and embeddings,
 * Hugging Face's grouping). {@link #updateRanges} restricts the update to parts of the store
 * (frozen parameters are neither stepped nor decayed, as if absent from the optimizer).
 *
 * <p>In BF16 precision the step also writes the bf16 copy of the values it updates (the op's
 * bf16 side output into {@link Parameters#lowValues()}), so the copy stays fresh and the next
 * forward needs no conversion. With update ranges the copy is written only where it was fresh
 * before (otherwise it stays stale and is refreshed whole before its next use).
 */
public final class AdamW implements AutoCloseable {
  private final Parameters params;
  private final Backend be;
  private final Tensor m;
  private final Tensor v;
  private final float beta1;
  private final float beta2;
  private final float eps;
  private final float weightDecay;
  private long decayBegin;
  private long decayEnd;
  private long[][] ranges;
  private int step;

  /** AdamW with the given hyper-parameters; decay on the store's decayed group. */
  public AdamW(Parameters params, float beta1, float beta2, float eps, float weightDecay) {
    this.params = params;
    this.be = params.backend();
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.decayBegin = 0;
    this.decayEnd = params.nDecay();
    this.ranges = new long[][] {{0, params.size()}};
    Tensor mm = be.alloc(DType.F32, params.size());
    try {
      this.v = be.alloc(DType.F32, params.size());
    } catch (RuntimeException | Error e) {
      mm.close();
      throw e;
    }
    this.m = mm;
  }

  /** Sets the weight-decay range (e.g. {@code [0, size)} to decay every parameter). */
  public AdamW decayRange(long begin, long end) {
    if (begin < 0 || begin > end || end > params.size()) {
      throw new IllegalArgumentException("decay range [" + begin + ", " + end
          + ") is not inside [0, " + params.size() + ")");
    }
    this.decayBegin = begin;
    this.decayEnd = end;
    return this;
  }

  /**
   * Restricts the update to these element ranges {@code [begin, end)} of the store (sorted,
   * disjoint); the rest is frozen. Default: the whole store.
   */
  public AdamW updateRanges(long[][] r) {
    long prev = 0;
    for (long[] x : r) {
      if (x.length != 2 || x[0] < prev || x[0] > x[1] || x[1] > params.size()) {
        throw new IllegalArgumentException("update ranges must be sorted, disjoint and inside [0, "
            + params.size() + ")");
      }
      prev = x[1];
    }
    this.ranges = r.clone();
    return this;
  }

  /** The element ranges this optimizer updates. */
  public long[][] updateRanges() {
    return ranges.clone();
  }

  /** One step with learning rate lr. */
  public void step(float lr) {
    step(lr, null);
  }

  /** One step with lr and gradScale (one F32 element multiplying the gradients, may be null). */
  public void step(float lr, Tensor gradScale) {
    beginStep();
    queueStep(lr, gradScale);
  }

  /**
   * Counts one more step and returns its number (from 1): the host half of {@link #step}, for a
   * step whose {@link #queueStep} is captured into a graph (the replay then reads the step
   * number and lr from the backend's step scalars).
   */
  public int beginStep() {
    return ++step;
  }

  /**
   * Queues the update of the step counted by {@link #beginStep}, with lr and gradScale (one F32
   * element multiplying the gradients, may be null). Its Java effect (the bf16 copy's freshness)
   * is the same however often it runs.
   */
  public void queueStep(float lr, Tensor gradScale) {
    if (step < 1) {
      throw new IllegalStateException("queueStep needs beginStep first");
    }
    Tensor low = params.precision() == Precision.BF16 ? params.lowValues() : null;
    // A partial step leaves the frozen part of the bf16 copy as it was: fresh after the step
    // only if fresh before.
    boolean lowWasFresh = params.isLowFresh();
    params.markValuesChanged(); // stale until the step below has been queued completely
    if (ranges.length == 1 && ranges[0][0] == 0 && ranges[0][1] == params.size()) {
      be.adamw(params.values(), low, params.grads(), m, v, decayBegin, decayEnd, lr, beta1, beta2,
          eps, weightDecay, step, gradScale);
      if (low != null) {
        params.markLowFresh(); // every value and its bf16 bits were written
      }
      return;
    }
    for (long[] r : ranges) {
      long n = r[1] - r[0];
      if (n == 0) {
        continue;
      }
      long db = Math.min(n, Math.max(0, decayBegin - r[0]));
      long de = Math.max(db, Math.min(n, decayEnd - r[0]));
      be.adamw(params.values().view(r[0], n), lowWasFresh ? low.view(r[0], n) : null,
          params.grads().view(r[0], n), m.view(r[0], n), v.view(r[0], n), db, de, lr, beta1,
          beta2, eps, weightDecay, step, gradScale);
    }
    if (lowWasFresh) {
      params.markLowFresh();
    }
  }

  /** Sets the steps taken (when resuming: the bias correction continues from there). */
  public void setStepCount(int steps) {
    if (steps < 0) {
      throw new IllegalArgumentException("step count " + steps + " must be >= 0");
    }
    this.step = steps;
  }

  /** Steps taken so far. */
  public int stepCount() {
    return step;
  }

  /** First moment (size of the store). */
  public Tensor m() {
    return m;
  }

  /** Second moment (size of the store). */
  public Tensor v() {
    return v;
  }

  @Override
  public void close() {
    try {
      m.close();
    } finally {
      v.close();
    }
  }
}
