package org.bertj.train;

import java.io.PrintStream;
import java.util.Map;

/** Receives the progress of {@link Trainer#fit()} (on the training thread). */
public interface TrainingListener {

  /**
   * Training starts (or resumes at {@code startStep}).
   *
   * @param totalSteps optimizer updates of the whole run
   * @param startStep updates already done (resume)
   * @param samplesPerStep examples per update (batch size * accumulation)
   */
  default void onStart(int totalSteps, int startStep, int samplesPerStep) {}

  /**
   * An optimizer update finished.
   *
   * @param step updates done so far (1-based)
   * @param totalSteps updates of the whole run
   * @param samples examples trained on since this process started training
   * @param seconds seconds since this process started training (evaluation included)
   * @param loss the mean loss of the latest update whose loss has been read from the device (the
   *     trainer reads losses in batches, at each logging step; NaN before the first read)
   */
  default void onStep(int step, int totalSteps, long samples, double seconds, double loss) {}

  /** A line of metrics.jsonl (a logging step or an evaluation). */
  default void onMetrics(Map<String, Object> line) {}

  /** A message for the user (data summary, checkpoint saved, early stop). */
  default void onMessage(String message) {}

  /** Training finished (normally or not). */
  default void onEnd() {}

  /** Nothing. */
  static TrainingListener silent() {
    return new TrainingListener() {};
  }

  /**
   * Plain lines on {@code out}: messages, evaluations, and a progress line at most every
   * {@code everySeconds} (and at the last step).
   */
  static TrainingListener plain(PrintStream out, double everySeconds) {
    return new PlainProgress(out, everySeconds);
  }
}
