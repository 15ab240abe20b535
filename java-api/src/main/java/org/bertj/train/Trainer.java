package org.bertj.train;

import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.Device;
import org.bertj.backend.GraphCache;
import org.bertj.backend.Precision;
import org.bertj.backend.StepScalars;
import org.bertj.backend.Tensor;
import org.bertj.io.BertConfig;
import org.bertj.io.BertConfig.ProblemType;
import org.bertj.io.BertTokenizer;
import org.bertj.io.Dataset;
import org.bertj.io.SafetensorsReader;
import org.bertj.io.SafetensorsWriter;
import org.bertj.model.BertForSequenceClassification;
import org.bertj.model.Batch;
import org.bertj.model.Parameter;
import org.bertj.model.Parameters;

/**
 * Fine-tunes a {@link BertForSequenceClassification} on a labelled data file, as Hugging Face's
 * {@code Trainer} does: AdamW (no weight decay on biases and LayerNorm weights), a linear warmup
 * then linear, cosine or constant learning rate, gradient clipping, gradient accumulation,
 * dropout, length-grouped batches with dynamic padding, evaluation every epoch or every N steps,
 * the best model kept, early stopping, and resume from a checkpoint on the same trajectory.
 *
 * <pre>{@code
 * try (Trainer t = Trainer.builder()
 *     .setModel(Path.of("weights/all-MiniLM-L6-v2"))
 *     .setTrainData(Path.of("train.tsv"))
 *     .optEvalData(Path.of("dev.tsv"))
 *     .optOutputDir(Path.of("runs/sentiment"))
 *     .build()) {
 *   TrainResult r = t.fit();
 *   Evaluation test = t.evaluate(Path.of("test.tsv"));
 * }
 * }</pre>
 *
 * <p>On the CPU a run is a pure function of its inputs and seed: the data order of epoch e comes
 * from (seed, e), each step's dropout from (seed, step, micro-batch), so two runs give the same
 * weights bit for bit, and a run resumed from a checkpoint ends where an uninterrupted one does.
 *
 * <p>The output folder ({@link Builder#optOutputDir}) receives a Hugging Face folder
 * ({@code config.json} with the labels, {@code model.safetensors}, {@code tokenizer.json}: the best
 * model when there is evaluation data, else the last), {@code metrics.jsonl}, {@code training.png},
 * and {@code checkpoint/} (weights, AdamW moments, {@code trainer_state.json}) for
 * {@link Builder#optResume}. Every file is written under a temporary name and renamed, and the
 * checkpoint folder is replaced by a rename, so a crash while saving leaves the previous one whole.
 */
public final class Trainer implements AutoCloseable {
  /** The checkpoint folder inside the output folder. */
  public static final String CHECKPOINT = "checkpoint";
  /** The trainer state file in a checkpoint folder. */
  public static final String STATE_FILE = "trainer_state.json";
  /** The optimizer moments in a checkpoint folder. */
  public static final String OPTIMIZER_FILE = "optimizer.safetensors";
  /** The metrics log in the output folder. */
  public static final String METRICS_FILE = "metrics.jsonl";
  /** The plot in the output folder. */
  public static final String PLOT_FILE = "training.png";

  /** Test hook: runs while a checkpoint is half written (to simulate a crash there). */
  static volatile Runnable midCheckpointHook;

  private final Builder args;
  private final Backend be;
  private final boolean ownsBackend;
  private final BertTokenizer tokenizer;
  private final LabelSpace labels;
  private final BertConfig config;
  private final Examples train;
  private final Examples eval;
  private final BertForSequenceClassification model;
  private final AdamW optimizer;
  private final Path resumeDir;
  private final TrainerState resumeState;
  private final Path output;
  private boolean fitted;
  /** The last fit's graph counts: eager runs, captures, replays, failed captures. */
  private long[] graphStats = new long[4];
  private boolean closed;

  private Trainer(Builder b) {
    this.args = b;
    Backend backend = b.backend != null ? b.backend : Backend.create(b.device);
    this.ownsBackend = b.backend == null;
    this.be = backend;
    BertTokenizer tok = null;
    BertForSequenceClassification m = null;
    AdamW opt = null;
    try {
      Path tokFile = b.modelDir.resolve("tokenizer.json");
      if (!Files.isRegularFile(b.modelDir.resolve("config.json"))) {
        throw new IllegalArgumentException("model folder " + b.modelDir + " has no config.json");
      }
      if (!Files.isRegularFile(tokFile)) {
        throw new IllegalArgumentException("model folder " + b.modelDir + " has no tokenizer.json");
      }
      tok = BertTokenizer.forModel(b.modelDir);
      this.tokenizer = tok;
      BertConfig base = BertConfig.forModel(b.modelDir);
      int maxLen = Math.min(b.maxLength, base.getMaxPositionEmbeddings());

      Dataset trainDs = Examples.read(b.trainFile);
      List<String> raw = Examples.rawLabels(trainDs, b.columns, b.limit);
      this.labels = LabelSpace.infer(raw, b.problemType, b.trainFile,
          Examples.lines(trainDs, b.limit));
      this.config = labels.applyTo(base);
      this.train = Examples.encode(trainDs, b.columns, tok, maxLen, labels, b.limit);
      this.eval = b.evalFile == null ? null
          : Examples.encode(Examples.read(b.evalFile), b.columns, tok, maxLen, labels, b.limit);

      if (b.resume != null) {
        this.resumeDir = checkpointIn(b.resume);
        this.resumeState = TrainerState.read(resumeDir.resolve(STATE_FILE));
        m = BertForSequenceClassification.fromPretrained(be, resumeDir, config, b.seed);
      } else {
        this.resumeDir = null;
        this.resumeState = null;
        m = BertForSequenceClassification.fromPretrained(be, b.modelDir, config, b.seed);
      }
      this.model = m;
      m.parameters().setPrecision(Precision.parse(b.precision, be.device()));
      opt = new AdamW(m.parameters(), (float) b.beta1, (float) b.beta2, (float) b.eps,
          (float) b.weightDecay);
      if (b.freezeEncoder) {
        opt.updateRanges(headRanges(m.parameters()));
      }
      this.optimizer = opt;
      this.output = b.outputDir != null ? b.outputDir
          : resumeDir != null ? resumeDir.toAbsolutePath().getParent() : null;
      if (output != null) {
        prepareOutput(output, tokFile);
      }
    } catch (RuntimeException | Error e) {
      if (opt != null) {
        opt.close();
      }
      if (m != null) {
        m.close();
      }
      if (tok != null) {
        tok.close();
      }
      if (ownsBackend) {
        backend.close();
      }
      throw e;
    }
  }

  /** A builder: {@code setModel} and {@code setTrainData} are required. */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * The checkpoint folder of a path given to resume: {@code DIR/checkpoint} of an output folder,
   * or the checkpoint folder itself (falling back to {@code checkpoint.old} when a save was cut
   * short between its two renames).
   */
  public static Path checkpointIn(Path dir) {
    for (Path p : List.of(dir.resolve(CHECKPOINT), dir, dir.resolve(CHECKPOINT + ".old"))) {
      if (Files.isRegularFile(p.resolve(STATE_FILE))) {
        return p;
      }
    }
    throw new TrainingException("--resume " + dir + ": no checkpoint there (expected "
        + dir.resolve(CHECKPOINT).resolve(STATE_FILE) + ")");
  }

  /** The ranges of the pooler and classifier (the only trained parameters with a frozen encoder). */
  private static long[][] headRanges(Parameters ps) {
    List<long[]> r = new ArrayList<>();
    for (Parameter p : ps.list()) {
      if (p.name().startsWith("bert.pooler.") || p.name().startsWith("classifier.")) {
        long b = p.offset();
        long e = b + p.numel();
        if (!r.isEmpty() && r.get(r.size() - 1)[1] == b) {
          r.get(r.size() - 1)[1] = e;
        } else {
          r.add(new long[] {b, e});
        }
      }
    }
    return r.toArray(new long[0][]);
  }

  private void prepareOutput(Path dir, Path tokFile) {
    try {
      Files.createDirectories(dir);
      Path probe = Files.createTempFile(dir, ".bertj-write-test", ".tmp");
      Files.delete(probe);
      Path tok = dir.resolve("tokenizer.json");
      if (!Files.exists(tok) || !Files.isSameFile(tok, tokFile)) {
        Path tmp = dir.resolve("tokenizer.json.tmp");
        Files.copy(tokFile, tmp, StandardCopyOption.REPLACE_EXISTING);
        Files.move(tmp, tok, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      }
      config.write(dir.resolve("config.json"));
    } catch (IOException | UncheckedIOException e) {
      throw new TrainingException("cannot write to the output folder " + dir + ": "
          + describe(e), e);
    }
  }

  static String describe(Throwable e) {
    Throwable c = e;
    while (c.getCause() != null && c.getCause() != c) {
      c = c.getCause();
    }
    String m = c.getMessage();
    String kind = c.getClass().getSimpleName();
    if (c instanceof java.nio.file.AccessDeniedException) {
      return "permission denied (" + m + ")";
    }
    if (c instanceof java.nio.file.NoSuchFileException) {
      return "no such file or folder (" + m + ")";
    }
    return m == null ? kind : kind + ": " + m;
  }

  // ------------------------------------------------------------------ the run

  /** Examples per epoch divided into optimizer updates. */
  private int updatesPerEpoch() {
    int micro = (train.size() + args.batchSize - 1) / args.batchSize;
    return (micro + args.gradAccum - 1) / args.gradAccum;
  }

  /** Optimizer updates of the whole run. */
  public int totalSteps() {
    return args.maxSteps > 0 ? args.maxSteps : args.epochs * updatesPerEpoch();
  }

  /**
   * Trains (or, with {@code optResume}, continues training), then leaves the best model (when
   * there is evaluation data) or the last one in {@link #model()} and the output folder.
   *
   * @throws TrainingException on a NaN/infinite loss or an output folder that cannot be written
   *     (the last good checkpoint stays in place)
   */
  public TrainResult fit() {
    checkOpen();
    if (fitted) {
      throw new IllegalStateException("fit() runs once per Trainer");
    }
    fitted = true;
    TrainingListener ls = args.listener;
    try {
      return run(ls);
    } finally {
      ls.onEnd();
    }
  }

  private TrainResult run(TrainingListener ls) {
    final long t0 = System.nanoTime();
    final int total = totalSteps();
    final int upe = updatesPerEpoch();
    final int numEpochs = args.maxSteps > 0 ? (total + upe - 1) / upe : args.epochs;
    final int warmup = args.warmupSteps >= 0 ? args.warmupSteps
        : LrSchedule.warmupSteps(args.warmupRatio, total);
    final LrSchedule schedule = new LrSchedule(args.scheduler, args.learningRate, warmup, total);
    final int logEvery = args.loggingSteps > 0 ? args.loggingSteps
        : Math.max(1, Math.min(50, total / 50));
    final Parameters ps = model.parameters();

    TrainerState st = resumeState != null ? resumeState : new TrainerState();
    if (resumeState == null) {
      st.seed = args.seed;
      st.batchSize = args.batchSize;
      st.gradAccum = args.gradAccum;
      st.totalSteps = total;
      st.trainExamples = train.size();
      st.labels = labels.names();
      st.problemType = labels.problemType().jsonName();
    } else {
      checkResumable(st, total);
    }
    st.learningRate = args.learningRate;
    st.warmupSteps = warmup;
    st.scheduler = args.scheduler.cliName();
    st.weightDecay = args.weightDecay;
    st.maxGradNorm = args.maxGradNorm;
    st.freezeEncoder = args.freezeEncoder;

    float[] bestValues = null;
    if (resumeState != null) {
      loadOptimizer(resumeDir.resolve(OPTIMIZER_FILE));
      optimizer.setStepCount(st.globalStep);
      if (st.bestStep >= 0) {
        Path best = resumeDir.toAbsolutePath().getParent().resolve("model.safetensors");
        if (Files.isRegularFile(best)) {
          bestValues = readValues(best, ps);
        } else {
          ls.onMessage("bertj: the best model of the resumed run (" + best + ") is missing; "
              + "keeping the best from here on");
          st.bestStep = -1;
          st.bestScore = null;
        }
      }
    }
    List<Map<String, Object>> keep = resumeState == null ? List.of()
        : MetricsLog.readUpTo(resumeDir.toAbsolutePath().getParent().resolve(METRICS_FILE),
            st.globalStep);
    Path metricsFile = output == null ? null : output.resolve(METRICS_FILE);

    ls.onMessage(String.format(Locale.ROOT,
        "bertj: train %s: %d examples (%d truncated to %d tokens)%s; %s, %d labels%s; device %s, %s",
        args.trainFile, train.size(), train.truncated(), Math.min(args.maxLength,
            config.getMaxPositionEmbeddings()),
        eval == null ? "" : String.format(Locale.ROOT, "; eval %s: %d examples (%d truncated)",
            args.evalFile, eval.size(), eval.truncated()),
        labels.problemType().jsonName(), labels.size(),
        labels.size() <= 10 ? " " + labels.names() : "", be.name(),
        model.parameters().precision().label()));
    ls.onMessage(String.format(Locale.ROOT,
        "bertj: %d steps (%s), batch %d x %d accumulated, %s, weight decay %s, clip %s, seed %d%s",
        total, args.maxSteps > 0 ? "max steps" : numEpochs + " epochs of " + upe,
        args.batchSize, args.gradAccum, schedule, args.weightDecay,
        args.maxGradNorm > 0 ? args.maxGradNorm : "off", args.seed,
        resumeState != null ? "; resuming at step " + st.globalStep + " from " + resumeDir : ""));
    ls.onStart(total, st.globalStep, args.batchSize * args.gradAccum);

    final double elapsedBefore = st.elapsedSeconds;
    long samples = 0;
    boolean stoppedEarly = false;
    Evaluation lastEval = null;
    Evaluation bestEval = null;
    int step = st.globalStep;
    final long perStep = (long) args.gradAccum * args.batchSize * config.getNumLabels();
    try (MetricsLog log = new MetricsLog(metricsFile, keep);
        LossTrace trace = new LossTrace(be, Math.max(4096, (logEvery + 1L) * perStep));
        Tensor normSq = be.alloc(DType.F32, 1);
        Tensor normPart = be.alloc(DType.F32, 1);
        Tensor clip = be.alloc(DType.F32, 1);
        Tensor inv = be.alloc(DType.F32, 1);
        Tensor scalars = be.alloc(DType.I32, StepScalars.INTS);
        GraphCache graphs = new GraphCache(be, args.graphs)) {
      long[][] ranges = optimizer.updateRanges();
      GraphCache evalGraphs = model.useInferenceGraphs(args.graphs); // evaluation batches too
      outer:
      for (int epoch = st.epoch; epoch < numEpochs; epoch++) {
        int[][] plan = Batching.lengthGrouped(train.lengths(), args.batchSize, args.seed, epoch);
        int startU = epoch == st.epoch ? st.updateInEpoch : 0;
        for (int u = startU; u < upe; u++) {
          if (step >= total) {
            break outer;
          }
          int from = u * args.gradAccum;
          int to = Math.min(plan.length, from + args.gradAccum);
          if (!trace.fits(perStep)) {
            drainLosses(trace, st);
          }
          double lr = schedule.lr(step);
          // the update after the micro-batches' gradients (the step is counted before)
          Runnable update = () -> {
            int k = to - from;
            if (k > 1) {
              be.fill(inv, 1f / k);
              be.scaleBy(ps.grads(), inv);
            }
            be.sumSquares(normSq, ps.grads().view(ranges[0][0], ranges[0][1] - ranges[0][0]));
            for (int r = 1; r < ranges.length; r++) {
              be.sumSquares(normPart, ps.grads().view(ranges[r][0], ranges[r][1] - ranges[r][0]));
              be.axpy(normSq, normPart, 1f);
            }
            Tensor scale = null;
            if (args.maxGradNorm > 0) {
              be.clipScale(clip, normSq, (float) args.maxGradNorm);
              scale = clip;
            }
            optimizer.queueStep((float) lr, scale);
          };
          if (graphs.enabled() && to - from == 1) {
            // host half (batch checked and uploaded, step counted, scalars uploaded), then the
            // device half replayed from a graph per batch shape (captured on its second use)
            Batch batch = train.batch(plan[from]);
            TrainStep.graphed(model, optimizer, scalars, graphs, batch, (float) lr,
                Batching.Rng.mix(Batching.Rng.mix(args.seed, step), 0), update);
            trace.add(step + 1, epoch, from, model.lossElements(), model.lossCount(), true);
            samples += plan[from].length;
            st.samplesSeen += plan[from].length;
          } else {
            ps.zeroGrad();
            for (int mb = from; mb < to; mb++) {
              Batch batch = train.batch(plan[mb]);
              model.forward(batch, true,
                  Batching.Rng.mix(Batching.Rng.mix(args.seed, step), mb - from));
              // the loss stays on the device until the next drain: no host round trip per step
              trace.add(step + 1, epoch, mb, model.lossElements(), model.lossCount(),
                  mb == to - 1);
              model.backward();
              samples += plan[mb].length;
              st.samplesSeen += plan[mb].length;
            }
            optimizer.beginStep();
            update.run();
          }
          step++;
          boolean epochEnd = u + 1 == upe;
          st.globalStep = step;
          st.epoch = epochEnd ? epoch + 1 : epoch;
          st.updateInEpoch = epochEnd ? 0 : u + 1;
          double secs = (System.nanoTime() - t0) / 1e9;
          ls.onStep(step, total, samples, secs, lastLoss);

          boolean last = step == total;
          boolean interrupted = args.stopAfterSteps > 0 && step >= args.stopAfterSteps && !last;
          boolean doEval = eval != null
              && (args.evalEvery > 0 ? step % args.evalEvery == 0 || last : epochEnd || last);
          boolean doSave = output != null && (doEval || epochEnd || last || interrupted
              || (args.saveEvery > 0 && step % args.saveEvery == 0));
          if (step % logEvery == 0 || last || doEval || doSave) {
            drainLosses(trace, st); // throws, naming the step, if a loss was not finite
          }

          if (step % logEvery == 0 || step == total) {
            float gn = be.download(normSq)[0];
            Map<String, Object> line = new LinkedHashMap<>();
            line.put("step", step);
            line.put("epoch", round(epoch + (u + 1.0) / upe, 4));
            line.put("loss", round(st.logLossSum / st.logLossCount, 6));
            line.put("learning_rate", lr);
            line.put("grad_norm", round(Math.sqrt(gn), 6));
            line.put("samples_per_s", round(samples / secs, 2));
            line.put("seconds", round(secs, 2));
            log.add(line);
            ls.onMetrics(line);
            st.logLossSum = 0;
            st.logLossCount = 0;
          }

          if (doEval) {
            long e0 = System.nanoTime();
            Evaluation ev = Evaluation.run(model, eval, args.evalBatchSize());
            lastEval = ev;
            Map<String, Object> line = new LinkedHashMap<>();
            line.put("step", step);
            line.put("epoch", round(epoch + (u + 1.0) / upe, 4));
            ev.toJson().forEach((key, v) -> line.put("eval_" + key, v));
            line.put("eval_seconds", round((System.nanoTime() - e0) / 1e9, 2));
            log.add(line);
            ls.onMetrics(line);
            double score = ev.score();
            if (st.bestScore == null || score > st.bestScore) {
              st.bestScore = score;
              st.bestStep = step;
              st.evalsWithoutImprovement = 0;
              bestEval = ev;
              bestValues = be.download(ps.values());
              if (output != null) {
                saveModel(output);
              }
            } else {
              st.evalsWithoutImprovement++;
              if (args.earlyStoppingPatience > 0
                  && st.evalsWithoutImprovement >= args.earlyStoppingPatience) {
                stoppedEarly = true;
                ls.onMessage(String.format(Locale.ROOT, "bertj: early stopping at step %d: eval %s "
                    + "has not improved on %.4f (step %d) for %d evaluations", step,
                    ev.scoreName(), Math.abs(st.bestScore), st.bestStep,
                    st.evalsWithoutImprovement));
              }
            }
          }
          doSave |= output != null && stoppedEarly;
          if (doSave) {
            st.elapsedSeconds = elapsedBefore + (System.nanoTime() - t0) / 1e9;
            saveCheckpoint(st);
            writePlot(log, ls);
          }
          if (stoppedEarly || interrupted) {
            break outer;
          }
        }
      }
      graphStats = new long[] {graphs.eagerRuns(), graphs.captures(), graphs.replays(),
          graphs.failures()};
      if (graphs.enabled()) {
        ls.onMessage(String.format(Locale.ROOT, "bertj: graphs: %d steps replayed from %d "
            + "captured graphs, %d eager (first runs of a shape), %d failed captures; "
            + "evaluation: %d batches replayed, %d eager",
            graphs.replays(), graphs.captures(), graphs.eagerRuns(), graphs.failures(),
            evalGraphs.replays(), evalGraphs.eagerRuns()));
      }
      if (bestValues != null && st.bestStep != step) {
        be.upload(ps.values(), bestValues); // the best model, as load_best_model_at_end
        ps.markValuesChanged();
      }
      if (output != null) {
        if (eval == null || st.bestStep < 0) {
          saveModel(output);
        }
        writePlot(log, ls);
      }
    }
    double secs = (System.nanoTime() - t0) / 1e9;
    return new TrainResult(secs, step, samples, secs > 0 ? samples / secs : 0, lastEval, bestEval,
        st.bestStep, stoppedEarly, train.truncated(), output);
  }

  private static double round(double v, int digits) {
    if (!Double.isFinite(v)) {
      return v;
    }
    double f = Math.pow(10, digits);
    return Math.round(v * f) / f;
  }

  private String lastGood(TrainerState st) {
    if (output == null) {
      return "No output folder, so no checkpoint was kept.";
    }
    Path ck = output.resolve(CHECKPOINT);
    return Files.isDirectory(ck) ? "The last good checkpoint is " + ck + " (resume with --resume "
        + output + "); lower the learning rate or check the data."
        : "No checkpoint was saved yet; lower the learning rate or check the data.";
  }

  private void checkResumable(TrainerState st, int total) {
    List<String> bad = new ArrayList<>();
    if (st.seed != args.seed) {
      bad.add("seed " + st.seed + " vs " + args.seed);
    }
    if (st.batchSize != args.batchSize) {
      bad.add("batch size " + st.batchSize + " vs " + args.batchSize);
    }
    if (st.gradAccum != args.gradAccum) {
      bad.add("gradient accumulation " + st.gradAccum + " vs " + args.gradAccum);
    }
    if (st.trainExamples != train.size()) {
      bad.add("training examples " + st.trainExamples + " vs " + train.size());
    }
    if (st.totalSteps != total) {
      bad.add("total steps " + st.totalSteps + " vs " + total + " (epochs / --max-steps)");
    }
    if (!Objects.equals(st.labels, labels.names())) {
      bad.add("labels " + st.labels + " vs " + labels.names());
    }
    if (!bad.isEmpty()) {
      throw new TrainingException("cannot resume from " + resumeDir + ": the run differs from the "
          + "checkpoint's (" + String.join("; ", bad) + "); resume with the same data and flags");
    }
  }

  // ------------------------------------------------------------------ files

  private void saveModel(Path dir) {
    try {
      model.save(dir);
    } catch (RuntimeException e) {
      throw new TrainingException("cannot save the model to " + dir + ": " + describe(e)
          + " (the previous model.safetensors there is intact)", e);
    }
  }

  private void saveCheckpoint(TrainerState st) {
    Path dir = output.resolve(CHECKPOINT);
    Path tmp = output.resolve(CHECKPOINT + ".tmp");
    Path old = output.resolve(CHECKPOINT + ".old");
    try {
      deleteTree(tmp);
      Files.createDirectories(tmp);
      model.save(tmp);
      Runnable hook = midCheckpointHook;
      if (hook != null) {
        hook.run();
      }
      Files.copy(output.resolve("tokenizer.json"), tmp.resolve("tokenizer.json"));
      new SafetensorsWriter()
          .putF32("exp_avg", be.download(optimizer.m()), optimizer.m().numel())
          .putF32("exp_avg_sq", be.download(optimizer.v()), optimizer.v().numel())
          .putMetadata("step", Integer.toString(optimizer.stepCount()))
          .write(tmp.resolve(OPTIMIZER_FILE));
      st.write(tmp.resolve(STATE_FILE));
      deleteTree(old);
      if (Files.exists(dir)) {
        Files.move(dir, old, StandardCopyOption.ATOMIC_MOVE);
      }
      Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
      deleteTree(old);
    } catch (IOException | RuntimeException e) {
      deleteTree(tmp);
      Path intact = Files.isDirectory(dir) ? dir : Files.isDirectory(old) ? old : null;
      throw new TrainingException("cannot save the checkpoint in " + output + ": " + describe(e)
          + (intact != null ? " (the previous checkpoint " + intact + " is intact)" : ""), e);
    }
  }

  private void writePlot(MetricsLog log, TrainingListener ls) {
    try {
      String metric = labels.problemType() == ProblemType.REGRESSION ? "mse"
          : labels.problemType() == ProblemType.MULTI_LABEL_CLASSIFICATION ? "macro_f1"
          : "accuracy";
      TrainingPlot.write(output.resolve(PLOT_FILE), log.lines(), metric);
    } catch (IOException | RuntimeException | Error e) {
      if (e instanceof VirtualMachineError v) {
        throw v;
      }
      ls.onMessage("bertj: could not draw " + PLOT_FILE + ": " + describe(e));
    }
  }

  static void deleteTree(Path dir) {
    if (!Files.exists(dir)) {
      return;
    }
    try (var walk = Files.walk(dir)) {
      for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      // best effort
    }
  }

  /** The mean loss of the last drained step (NaN before the first), for the progress line. */
  private double lastLoss = Double.NaN;

  /** Reads the recorded losses; a non-finite one stops training, naming its step and batch. */
  private void drainLosses(LossTrace trace, TrainerState st) {
    for (LossTrace.Step s : trace.drain()) {
      if (!Double.isFinite(s.loss())) {
        throw new TrainingException(String.format(Locale.ROOT,
            "the training loss became %s at step %d (epoch %d, batch %d of %s): stopping. %s",
            s.loss(), s.step(), s.epoch() + 1, s.batchInEpoch() + 1, args.trainFile,
            lastGood(st)));
      }
      st.logLossSum += s.loss();
      st.logLossCount++;
      lastLoss = s.loss();
    }
  }

  private void loadOptimizer(Path file) {
    try (SafetensorsReader r = SafetensorsReader.open(file)) {
      float[] m = r.readFloats("exp_avg");
      float[] v = r.readFloats("exp_avg_sq");
      if (m.length != optimizer.m().numel() || v.length != optimizer.v().numel()) {
        throw new TrainingException(file + ": optimizer state of " + m.length
            + " elements does not fit the model's " + optimizer.m().numel());
      }
      be.upload(optimizer.m(), m);
      be.upload(optimizer.v(), v);
    }
  }

  /** Parameter values from a model.safetensors written by {@code save}, in buffer order. */
  private static float[] readValues(Path file, Parameters ps) {
    float[] out = new float[Math.toIntExact(ps.size())];
    try (SafetensorsReader r = SafetensorsReader.open(file)) {
      for (Parameter p : ps.list()) {
        r.readFloats(p.name(), out, Math.toIntExact(p.offset()));
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ evaluation

  /** Evaluates the current model on a labelled file (same columns, limit, max length). */
  public Evaluation evaluate(Path file) {
    checkOpen();
    Examples ex = Examples.encode(Examples.read(file), args.columns, tokenizer,
        Math.min(args.maxLength, config.getMaxPositionEmbeddings()), labels, args.limit);
    return Evaluation.run(model, ex, args.evalBatchSize());
  }

  /** Evaluates the current model on examples encoded elsewhere. */
  public Evaluation evaluate(Examples ex) {
    checkOpen();
    return Evaluation.run(model, ex, args.evalBatchSize());
  }

  /** The model (after {@link #fit()}: the best one when there was evaluation data). */
  public BertForSequenceClassification model() {
    return model;
  }

  public LabelSpace labels() {
    return labels;
  }

  /** The configuration saved with the model (labels, problem type, architecture). */
  public BertConfig config() {
    return config;
  }

  public BertTokenizer tokenizer() {
    return tokenizer;
  }

  public Examples trainExamples() {
    return train;
  }

  /** The evaluation examples, or null. */
  public Examples evalExamples() {
    return eval;
  }

  /** The output folder, or null. */
  public Path outputDir() {
    return output;
  }

  public Backend backend() {
    return be;
  }

  public AdamW optimizer() {
    return optimizer;
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("the trainer is closed");
    }
  }

  /** The last fit's graph counts: eager runs, captures, replays, failed captures (for tests). */
  long[] graphStats() {
    return graphStats.clone();
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      optimizer.close();
      model.close();
      tokenizer.close();
    } finally {
      if (ownsBackend) {
        be.close();
      }
    }
  }

  // ------------------------------------------------------------------ state

  /** {@code trainer_state.json}: where a run is, for resume. */
  static final class TrainerState {
    public int version = 1;
    public int globalStep;
    public int epoch;
    public int updateInEpoch;
    public long samplesSeen;
    public long seed;
    public int batchSize;
    public int gradAccum;
    public int totalSteps;
    public int trainExamples;
    public List<String> labels;
    public String problemType;
    public double learningRate;
    public int warmupSteps;
    public String scheduler;
    public double weightDecay;
    public double maxGradNorm;
    public boolean freezeEncoder;
    public Double bestScore;
    public int bestStep = -1;
    public int evalsWithoutImprovement;
    public double logLossSum;
    public int logLossCount;
    public double elapsedSeconds;

    static TrainerState read(Path file) {
      try {
        return MetricsLog.JSON.copy()
            .setPropertyNamingStrategy(com.fasterxml.jackson.databind.PropertyNamingStrategies.SNAKE_CASE)
            .configure(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES,
                false)
            .readValue(file.toFile(), TrainerState.class);
      } catch (IOException e) {
        throw new TrainingException("cannot read the trainer state " + file + ": " + describe(e), e);
      }
    }

    void write(Path file) throws IOException {
      byte[] bytes = MetricsLog.JSON.copy()
          .setPropertyNamingStrategy(com.fasterxml.jackson.databind.PropertyNamingStrategies.SNAKE_CASE)
          .enable(SerializationFeature.INDENT_OUTPUT)
          .writeValueAsString(this).getBytes(StandardCharsets.UTF_8);
      Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
      Files.write(tmp, bytes);
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
  }

  // ------------------------------------------------------------------ builder

  /** Options of a {@link Trainer}; required {@code setX}, optional {@code optX}. */
  public static final class Builder {
    private Path modelDir;
    private Path trainFile;
    private Path evalFile;
    private Path outputDir;
    private int epochs = 3;
    private int maxSteps = -1;
    private int batchSize = 32;
    private int evalBatchSize = -1;
    private int gradAccum = 1;
    private double learningRate = 5e-5;
    private double weightDecay = 0.01;
    private double warmupRatio = 0.06;
    private int warmupSteps = -1;
    private LrSchedule.Kind scheduler = LrSchedule.Kind.LINEAR;
    private double maxGradNorm = 1.0;
    private double beta1 = 0.9;
    private double beta2 = 0.999;
    private double eps = 1e-8;
    private int maxLength = 128;
    private long seed = 42;
    private Device device = Device.AUTO;
    private String precision = "auto";
    private Backend backend;
    private boolean freezeEncoder;
    private boolean graphs = GraphCache.enabledByDefault();
    private ProblemType problemType;
    private TextColumns columns = TextColumns.DEFAULT;
    private int limit = -1;
    private int evalEvery;
    private int earlyStoppingPatience;
    private int loggingSteps;
    private int saveEvery;
    private int stopAfterSteps;
    private Path resume;
    private TrainingListener listener = TrainingListener.plain(System.err, 10);

    private Builder() {}

    /** The pre-trained model: a Hugging Face folder (config.json, model.safetensors, tokenizer.json). */
    public Builder setModel(Path dir) {
      this.modelDir = dir;
      return this;
    }

    /** The labelled training file (.tsv, .csv, .jsonl, .json). */
    public Builder setTrainData(Path file) {
      this.trainFile = file;
      return this;
    }

    /** Evaluation data: evaluated every epoch (or {@link #optEvalEvery} steps); picks the best model. */
    public Builder optEvalData(Path file) {
      this.evalFile = file;
      return this;
    }

    /** Where the model, metrics, plot and checkpoint go (default: nothing is written). */
    public Builder optOutputDir(Path dir) {
      this.outputDir = dir;
      return this;
    }

    /** Epochs (default 3); ignored when {@link #optMaxSteps} is set. */
    public Builder optEpochs(int n) {
      positive("epochs", n);
      this.epochs = n;
      return this;
    }

    /** Optimizer updates in all, overriding epochs (default -1: off). */
    public Builder optMaxSteps(int n) {
      this.maxSteps = n;
      return this;
    }

    /** Examples per micro-batch (default 32). */
    public Builder optBatchSize(int n) {
      positive("batch size", n);
      this.batchSize = n;
      return this;
    }

    /** Examples per evaluation batch (default: 2 x the batch size). */
    public Builder optEvalBatchSize(int n) {
      positive("eval batch size", n);
      this.evalBatchSize = n;
      return this;
    }

    int evalBatchSize() {
      return evalBatchSize > 0 ? evalBatchSize : 2 * batchSize;
    }

    /** Micro-batches per optimizer update (default 1). */
    public Builder optGradAccum(int n) {
      positive("gradient accumulation", n);
      this.gradAccum = n;
      return this;
    }

    /** Peak learning rate (default 5e-5). */
    public Builder optLearningRate(double lr) {
      if (!(lr > 0 && Double.isFinite(lr))) {
        throw new IllegalArgumentException("learning rate " + lr + " must be > 0");
      }
      this.learningRate = lr;
      return this;
    }

    /** AdamW weight decay on weights and embeddings, not biases or LayerNorm (default 0.01). */
    public Builder optWeightDecay(double wd) {
      if (!(wd >= 0 && Double.isFinite(wd))) {
        throw new IllegalArgumentException("weight decay " + wd + " must be >= 0");
      }
      this.weightDecay = wd;
      return this;
    }

    /** Warmup as a fraction of the steps, ceil(ratio * total) (default 0.06). */
    public Builder optWarmupRatio(double r) {
      LrSchedule.warmupSteps(r, 1);
      this.warmupRatio = r;
      return this;
    }

    /** Warmup steps, overriding the ratio (default -1: use the ratio). */
    public Builder optWarmupSteps(int n) {
      this.warmupSteps = n;
      return this;
    }

    /** Decay after warmup (default linear). */
    public Builder optScheduler(LrSchedule.Kind k) {
      this.scheduler = Objects.requireNonNull(k);
      return this;
    }

    /** Gradient clipping by global norm (default 1.0; <= 0 turns it off). */
    public Builder optMaxGradNorm(double n) {
      this.maxGradNorm = n;
      return this;
    }

    /** AdamW betas and epsilon (default 0.9, 0.999, 1e-8). */
    public Builder optAdam(double b1, double b2, double e) {
      this.beta1 = b1;
      this.beta2 = b2;
      this.eps = e;
      return this;
    }

    /** Most tokens per example, special tokens included; longer ones are truncated (default 128). */
    public Builder optMaxLength(int n) {
      if (n < 3) {
        throw new IllegalArgumentException("max length " + n + " must be at least 3");
      }
      this.maxLength = n;
      return this;
    }

    /** Seed of the data order, dropout and new head weights (default 42). */
    public Builder optSeed(long s) {
      this.seed = s;
      return this;
    }

    /** GEMM precision: "fp32", "bf16" or "auto" (default: bf16 on CUDA, fp32 on the CPU). */
    public Builder optPrecision(String p) {
      Precision.parse(Objects.requireNonNull(p), Device.CPU);
      this.precision = p;
      return this;
    }

    /** The device (default AUTO), when no backend is given. */
    public Builder optDevice(Device d) {
      this.device = Objects.requireNonNull(d);
      return this;
    }

    /** A backend to use (not closed by the trainer). */
    public Builder optBackend(Backend b) {
      this.backend = b;
      return this;
    }

    /**
     * Captures the device half of each training step into a graph per batch shape and replays it
     * (with gradient accumulation 1; CUDA graphs on a GPU, an emulation on the CPU). Default:
     * the system property bertj.graphs (false). See {@link GraphCache}.
     */
    public Builder optGraphs(boolean g) {
      this.graphs = g;
      return this;
    }

    /** Train only the pooler and the classifier. */
    public Builder optFreezeEncoder(boolean f) {
      this.freezeEncoder = f;
      return this;
    }

    /** The problem type (default: inferred from the labels, see {@link LabelSpace}). */
    public Builder optProblemType(ProblemType p) {
      this.problemType = p;
      return this;
    }

    /** Column names (default: sentence/text, no pair, label). */
    public Builder optColumns(TextColumns c) {
      this.columns = Objects.requireNonNull(c);
      return this;
    }

    /** Use only the first n rows of each data file (default -1: all). */
    public Builder optLimit(int n) {
      this.limit = n;
      return this;
    }

    /** Evaluate every n steps (default 0: every epoch); always after the last step. */
    public Builder optEvalEvery(int n) {
      this.evalEvery = n;
      return this;
    }

    /** Stop after this many evaluations without improvement (default 0: never). */
    public Builder optEarlyStoppingPatience(int n) {
      this.earlyStoppingPatience = n;
      return this;
    }

    /** A metrics.jsonl line every n steps (default 0: about 50 lines per run, at most every 50). */
    public Builder optLoggingSteps(int n) {
      this.loggingSteps = n;
      return this;
    }

    /** Also save the resume checkpoint every n steps (default 0: at evaluations and epoch ends). */
    public Builder optSaveEvery(int n) {
      this.saveEvery = n;
      return this;
    }

    /**
     * Stop after this many steps, saving a checkpoint, as if interrupted: the schedule still spans
     * the whole run, so resuming continues it (default 0: off).
     */
    public Builder optStopAfterSteps(int n) {
      this.stopAfterSteps = n;
      return this;
    }

    /**
     * Continue the run saved in this folder (an output folder or its {@code checkpoint/}): weights,
     * AdamW moments, step, schedule position, data order and RNG. The data and the flags that
     * shape the run (seed, batch size, accumulation, steps) must be the same.
     */
    public Builder optResume(Path dir) {
      this.resume = dir;
      return this;
    }

    /** Progress (default: plain lines on stderr every 10 s). */
    public Builder optListener(TrainingListener l) {
      this.listener = l == null ? TrainingListener.silent() : l;
      return this;
    }

    private static void positive(String what, int n) {
      if (n < 1) {
        throw new IllegalArgumentException(what + " " + n + " must be at least 1");
      }
    }

    /** Loads the model, tokenizer and data; checks the output folder. */
    public Trainer build() {
      if (modelDir == null) {
        throw new IllegalArgumentException("setModel(dir) is required");
      }
      if (trainFile == null) {
        throw new IllegalArgumentException("setTrainData(file) is required");
      }
      return new Trainer(this);
    }
  }
}
