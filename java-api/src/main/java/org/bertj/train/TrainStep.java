package org.bertj.train;

import java.util.List;
import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.GraphCache;
import org.bertj.backend.StepScalars;
import org.bertj.backend.Tensor;
import org.bertj.model.Batch;
import org.bertj.model.BertForSequenceClassification;

/**
 * One optimisation step of a classifier on one batch: zero the gradients, forward with dropout,
 * backward, clip the global gradient norm, AdamW. The clip runs on the device (sum of squares,
 * then a scale AdamW reads), so a step needs no host round trip.
 *
 * <p>With graphs on ({@code -Dbertj.graphs=true}, or the constructor's flag), the host half of
 * the step (checking and uploading the batch, counting the optimizer step) runs every time, and
 * the device half is captured into a graph per batch shape ({@link GraphCache}) and replayed:
 * the seed, learning rate and step number reach it through the backend's step scalars.
 */
public final class TrainStep implements AutoCloseable {
  private final BertForSequenceClassification model;
  private final AdamW optimizer;
  private final Backend be;
  private final Tensor normSq;
  private final Tensor scale;
  private final Tensor scalars;
  private final float maxGradNorm;
  private final GraphCache graphs;

  /** maxGradNorm <= 0 disables clipping; graphs as {@link GraphCache#enabledByDefault()}. */
  public TrainStep(BertForSequenceClassification model, AdamW optimizer, float maxGradNorm) {
    this(model, optimizer, maxGradNorm, GraphCache.enabledByDefault());
  }

  /** maxGradNorm <= 0 disables clipping; graphs: capture and replay the device half. */
  public TrainStep(BertForSequenceClassification model, AdamW optimizer, float maxGradNorm,
      boolean graphs) {
    this.model = model;
    this.optimizer = optimizer;
    this.be = model.backend();
    this.maxGradNorm = maxGradNorm;
    this.normSq = be.alloc(DType.F32, 1);
    this.scale = be.alloc(DType.F32, 1);
    this.scalars = be.alloc(DType.I32, StepScalars.INTS);
    this.graphs = new GraphCache(be, graphs);
  }

  /** Forward with dropout (seed), backward, clip, AdamW at learning rate lr. */
  public void run(Batch batch, float lr, long seed) {
    if (!graphs.enabled()) {
      model.parameters().zeroGrad();
      model.forward(batch, true, seed);
      model.backward();
      optimizer.beginStep();
      queueUpdate(lr);
      return;
    }
    graphed(model, optimizer, scalars, graphs, batch, lr, seed, () -> queueUpdate(lr));
  }

  /**
   * One step through a graph cache: the host half (stage the batch, count the step, upload seed,
   * lr and step number into scalars), then the device half (zero the gradients, forward,
   * backward, update: queued eagerly, or replayed from the graph of the batch's shape) with the
   * backend reading the step scalars. update queues the clip and {@link AdamW#queueStep}.
   */
  static void graphed(BertForSequenceClassification model, AdamW optimizer, Tensor scalars,
      GraphCache graphs, Batch batch, float lr, long seed, Runnable update) {
    Backend be = model.backend();
    model.stage(batch, true, seed);
    int n = optimizer.beginStep();
    be.upload(scalars, StepScalars.pack(seed, lr, n));
    Tensor before = be.stepScalars();
    be.useStepScalars(scalars);
    try {
      graphs.run(List.of(model.stageKey(), model.parameters().isLowFresh()), () -> {
        model.parameters().zeroGrad();
        model.compute();
        model.backward();
        update.run();
      });
    } finally {
      be.useStepScalars(before);
    }
  }

  /** Clip (when on) and the AdamW update of the step counted by beginStep. */
  private void queueUpdate(float lr) {
    if (maxGradNorm > 0f) {
      be.sumSquares(normSq, model.parameters().grads());
      be.clipScale(scale, normSq, maxGradNorm);
      optimizer.queueStep(lr, scale);
    } else {
      optimizer.queueStep(lr, null);
    }
  }

  /** The squared global gradient norm of the last step (copied from the device). */
  public double lastGradNormSquared() {
    return be.download(normSq)[0];
  }

  /** The graph cache of the device half (counts of captures and replays). */
  public GraphCache graphs() {
    return graphs;
  }

  @Override
  public void close() {
    try {
      graphs.close();
    } finally {
      normSq.close();
      scale.close();
      scalars.close();
    }
  }
}
