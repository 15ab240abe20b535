package org.bertj.model;

/**
 * The dropout state of one forward/backward step: the step's seed, whether dropout is on, and a
 * running element counter reset at the start of each forward. Each dropout call takes a distinct
 * Philox offset from the counter (and advances it by its element count), and records it, so the
 * backward reproduces every mask.
 */
public final class DropoutRng {
  private long seed;
  private boolean training;
  private long counter;
  private boolean saves = true;

  /** Starts a step: dropout on when training, with this seed; the counter restarts at 0. */
  public void reset(boolean training, long seed) {
    this.training = training;
    this.seed = seed;
    this.counter = 0;
  }

  /**
   * Whether this forward keeps what the backward needs (default); false for an inference forward,
   * whose ops then skip the outputs only the backward reads.
   */
  public void setSavesForBackward(boolean s) {
    this.saves = s;
  }

  public boolean savesForBackward() {
    return saves;
  }

  /** Restarts the element counter (a forward starts over with the same seed). */
  public void restart() {
    this.counter = 0;
  }

  /** The probability a dropout layer uses now: prob when training, else 0. */
  public float p(double prob) {
    return training ? (float) prob : 0f;
  }

  /** Reserves n elements of the Philox stream and returns their offset. */
  public long take(long n) {
    long off = counter;
    counter = Math.addExact(counter, n);
    return off;
  }

  /** The step's seed. */
  public long seed() {
    return seed;
  }

  public boolean training() {
    return training;
  }
}
