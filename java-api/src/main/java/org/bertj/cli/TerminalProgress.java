package org.bertj.cli;

import java.io.PrintStream;
import java.util.Locale;
import java.util.Map;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import org.bertj.train.TrainingListener;

/** The finetune progress bar on a terminal (stderr): steps, ETA, loss and samples/s. */
final class TerminalProgress implements TrainingListener {
  private final PrintStream err;
  private ProgressBar bar;
  private double emaLoss = Double.NaN;

  TerminalProgress(PrintStream err) {
    this.err = err;
  }

  /** A progress bar on a terminal, plain lines every 10 s otherwise. */
  static TrainingListener forStderr() {
    return System.console() != null ? new TerminalProgress(System.err)
        : TrainingListener.plain(System.err, 10);
  }

  @Override
  public void onStart(int totalSteps, int startStep, int samplesPerStep) {
    bar = new ProgressBarBuilder().setTaskName("train").setInitialMax(totalSteps)
        .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(500)
        .setConsumer(new ConsoleProgressBarConsumer(err)).startsFrom(startStep,
            java.time.Duration.ZERO)
        .build();
  }

  @Override
  public void onStep(int step, int totalSteps, long samples, double seconds, double loss) {
    if (Double.isFinite(loss)) {
      emaLoss = Double.isNaN(emaLoss) ? loss : 0.9 * emaLoss + 0.1 * loss;
    }
    if (bar != null) {
      bar.stepTo(step);
      bar.setExtraMessage(String.format(Locale.ROOT, "loss %.3f, %.0f samples/s", emaLoss,
          seconds > 0 ? samples / seconds : 0));
    }
  }

  @Override
  public void onMetrics(Map<String, Object> line) {
    if (line.keySet().stream().anyMatch(k -> k.startsWith("eval_"))) {
      onMessage("eval " + line);
    }
  }

  @Override
  public void onMessage(String message) {
    synchronized (err) {
      err.print("\r\033[2K");
      err.println(message);
    }
  }

  @Override
  public void onEnd() {
    if (bar != null) {
      bar.close();
      bar = null;
    }
  }
}
