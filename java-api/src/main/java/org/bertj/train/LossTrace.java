package org.bertj.train;

import java.util.ArrayList;
import java.util.List;
import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.Tensor;

/**
 * Keeps the training losses on the device and reads many steps in one copy, so that a step
 * needs no host round trip (on a GPU, a per-step read would stall the queue every step). Each
 * micro-batch's per-element losses are copied (device to device) into one buffer; {@link #drain}
 * downloads the buffer once and gives each recorded step's mean loss, in order.
 */
final class LossTrace implements AutoCloseable {
  /** One optimizer step's micro-batches. */
  record Step(int step, int epoch, int batchInEpoch, double loss) {}

  private record Piece(int step, int epoch, int batch, long offset, long numel, int count,
      boolean lastOfStep) {}

  private final Backend be;
  private final Tensor buf;
  private final List<Piece> pieces = new ArrayList<>();
  private long used;

  /** capacity: loss elements the device buffer holds before a drain is needed. */
  LossTrace(Backend be, long capacity) {
    this.be = be;
    this.buf = be.alloc(DType.F32, capacity);
  }

  /** Whether numel more elements fit without draining. */
  boolean fits(long numel) {
    return used + numel <= buf.numel();
  }

  /**
   * Records one micro-batch (losses: its per-element losses, count: how many count in its
   * mean); lastOfStep closes the optimizer step, whose loss is the mean of its micro-batches'.
   */
  void add(int step, int epoch, int batch, Tensor losses, int count, boolean lastOfStep) {
    long n = losses.numel();
    if (!fits(n)) {
      throw new IllegalStateException("loss trace full: drain first");
    }
    be.copy(buf.view(used, n), losses);
    pieces.add(new Piece(step, epoch, batch, used, n, count, lastOfStep));
    used += n;
  }

  /** Downloads what was recorded and returns the completed steps' losses (then empties). */
  List<Step> drain() {
    List<Step> out = new ArrayList<>();
    if (pieces.isEmpty()) {
      return out;
    }
    float[] v = be.download(buf.view(0, used));
    double sum = 0;
    int k = 0;
    int keepFrom = 0;
    for (int i = 0; i < pieces.size(); i++) {
      Piece p = pieces.get(i);
      double s = 0;
      for (long j = p.offset; j < p.offset + p.numel; j++) {
        s += v[(int) j];
      }
      sum += p.count == 0 ? Double.NaN : s / p.count;
      k++;
      if (p.lastOfStep) {
        out.add(new Step(p.step, p.epoch, p.batch, sum / k));
        sum = 0;
        k = 0;
        keepFrom = i + 1;
      }
    }
    if (keepFrom != pieces.size()) {
      throw new IllegalStateException("drain in the middle of a step");
    }
    pieces.clear();
    used = 0;
    return out;
  }

  @Override
  public void close() {
    buf.close();
  }
}
