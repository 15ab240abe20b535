package org.bertj.train;

import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.Tensor;
import org.bertj.model.Parameters;

/**
 * {@code torch.optim.AdamW} over a model's flat {@link Parameters}: one {@link Backend#adamw}
 * call per step. The moments m, v are flat buffers of the store's size. Weight decay applies to
 * {@code [decayBegin, decayEnd)}, by default {@code [0, nDecay)} (Linear weights and embeddings,
 * Hugging Face's grouping).
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

  /** One step with learning rate lr. */
  public void step(float lr) {
    step(lr, null);
  }

  /** One step with lr and gradScale (one F32 element multiplying the gradients, may be null). */
  public void step(float lr, Tensor gradScale) {
    step++;
    be.adamw(params.values(), params.grads(), m, v, decayBegin, decayEnd, lr, beta1, beta2, eps,
        weightDecay, step, gradScale);
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
