package org.bertj.train;

import java.io.PrintStream;
import java.util.Locale;
import java.util.Map;

/** Periodic plain progress lines (for logs and pipes), see {@link TrainingListener#plain}. */
final class PlainProgress implements TrainingListener {
  private final PrintStream out;
  private final double every;
  private double lastPrint = Double.NEGATIVE_INFINITY;
  private int startStep;
  private double lossSum;
  private int lossN;

  PlainProgress(PrintStream out, double everySeconds) {
    this.out = out;
    this.every = everySeconds;
  }

  @Override
  public void onStart(int totalSteps, int startStep, int samplesPerStep) {
    this.startStep = startStep;
  }

  @Override
  public void onStep(int step, int totalSteps, long samples, double seconds, double loss) {
    if (Double.isFinite(loss)) {
      lossSum += loss;
      lossN++;
    }
    if (seconds - lastPrint < every && step < totalSteps) {
      return;
    }
    lastPrint = seconds;
    out.println(progressLine(step, totalSteps, startStep, samples, seconds,
        lossN == 0 ? Double.NaN : lossSum / lossN));
    lossSum = 0;
    lossN = 0;
  }

  /** {@code step 120/1894 (6%) loss 0.4213 | 61.2 samples/s | 32s elapsed, ETA 8m10s}. */
  static String progressLine(int step, int total, int startStep, long samples, double seconds,
      double loss) {
    double rate = seconds > 0 ? samples / seconds : 0;
    double stepRate = seconds > 0 ? (step - startStep) / seconds : 0;
    double eta = stepRate > 0 ? (total - step) / stepRate : Double.NaN;
    return String.format(Locale.ROOT, "step %d/%d (%.0f%%) loss %s | %.1f samples/s | %s elapsed, "
        + "ETA %s", step, total, 100.0 * step / total,
        Double.isNaN(loss) ? "-" : String.format(Locale.ROOT, "%.4f", loss), rate,
        duration(seconds), duration(eta));
  }

  static String duration(double s) {
    if (!Double.isFinite(s)) {
      return "?";
    }
    long t = Math.round(s);
    if (t >= 3600) {
      return String.format(Locale.ROOT, "%dh%02dm", t / 3600, t / 60 % 60);
    }
    if (t >= 60) {
      return String.format(Locale.ROOT, "%dm%02ds", t / 60, t % 60);
    }
    return t + "s";
  }

  @Override
  public void onMetrics(Map<String, Object> line) {
    if (line.keySet().stream().anyMatch(k -> k.startsWith("eval_"))) {
      out.println("eval " + line);
    }
  }

  @Override
  public void onMessage(String message) {
    out.println(message);
  }
}
