package org.bertj.train;

import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.Tensor;
import org.bertj.model.Batch;
import org.bertj.model.BertForSequenceClassification;

/**
 * One optimisation step of a classifier on one batch: zero the gradients, forward with dropout,
 * backward, clip the global gradient norm, AdamW. The clip runs on the device (sum of squares,
 * then a scale AdamW reads), so a step needs no host round trip.
 */
public final class TrainStep implements AutoCloseable {
  private final BertForSequenceClassification model;
  private final AdamW optimizer;
  private final Backend be;
  private final Tensor normSq;
  private final Tensor scale;
  private final float maxGradNorm;

  /** maxGradNorm <= 0 disables clipping. */
  public TrainStep(BertForSequenceClassification model, AdamW optimizer, float maxGradNorm) {
    this.model = model;
    this.optimizer = optimizer;
    this.be = model.backend();
    this.maxGradNorm = maxGradNorm;
    this.normSq = be.alloc(DType.F32, 1);
    this.scale = be.alloc(DType.F32, 1);
  }

  /** Forward with dropout (seed), backward, clip, AdamW at learning rate lr. */
  public void run(Batch batch, float lr, long seed) {
    model.parameters().zeroGrad();
    model.forward(batch, true, seed);
    model.backward();
    if (maxGradNorm > 0f) {
      be.sumSquares(normSq, model.parameters().grads());
      be.clipScale(scale, normSq, maxGradNorm);
      optimizer.step(lr, scale);
    } else {
      optimizer.step(lr);
    }
  }

  /** The squared global gradient norm of the last step (copied from the device). */
  public double lastGradNormSquared() {
    return be.download(normSq)[0];
  }

  @Override
  public void close() {
    normSq.close();
    scale.close();
  }
}
