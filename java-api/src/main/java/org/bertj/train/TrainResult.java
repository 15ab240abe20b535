package org.bertj.train;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What {@link Trainer#fit()} did.
 *
 * @param seconds wall time of fit (evaluations and checkpoints included, as transformers counts)
 * @param steps optimizer updates done in all (a resumed run counts the earlier ones too)
 * @param samples examples trained on by this call
 * @param samplesPerSecond samples / seconds
 * @param lastEval the last evaluation on the eval data, or null
 * @param bestEval the best evaluation (its model is the one kept), or null
 * @param bestStep the step of the best evaluation, or -1
 * @param stoppedEarly whether early stopping ended the run
 * @param truncated training examples cut to the maximum length
 * @param output the output folder, or null
 */
public record TrainResult(double seconds, int steps, long samples, double samplesPerSecond,
    Evaluation lastEval, Evaluation bestEval, int bestStep, boolean stoppedEarly, int truncated,
    Path output) {

  /** {@code {"seconds", "steps", "samples_per_s", "samples", "truncated"}}. */
  public Map<String, Object> toJson() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("seconds", Math.round(seconds * 1000) / 1000.0);
    m.put("steps", steps);
    m.put("samples_per_s", Math.round(samplesPerSecond * 100) / 100.0);
    m.put("samples", samples);
    m.put("truncated", truncated);
    if (stoppedEarly) {
      m.put("stopped_early", true);
    }
    return m;
  }
}
