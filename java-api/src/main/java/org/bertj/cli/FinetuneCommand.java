package org.bertj.cli;

import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import org.bertj.backend.GraphCache;
import org.bertj.io.BertConfig.ProblemType;
import org.bertj.io.MiniLmConverter;
import org.bertj.train.Evaluation;
import org.bertj.train.Examples;
import org.bertj.train.LrSchedule;
import org.bertj.train.TrainResult;
import org.bertj.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code bertj finetune}: fine-tunes a BERT classifier on a labelled file. */
@Command(name = "finetune", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
        "Fine-tunes a BERT model for text classification (or regression) on a labelled file "
            + "(.tsv, .csv, .jsonl) and writes a Hugging Face folder (config.json, "
            + "model.safetensors, tokenizer.json), metrics.jsonl, training.png and a checkpoint "
            + "for --resume.",
        "Progress goes to stderr; the last line of stdout is one JSON object: "
            + "{\"train\": {...}, \"eval\": {...}, \"test\": {...}, \"output\": DIR}.",
        "Example: ./bertj finetune --train examples/sentiment/train.tsv "
            + "--test examples/sentiment/test.tsv"})
public final class FinetuneCommand implements Callable<Integer> {

  @Option(names = "--model", paramLabel = "DIR",
      description = "Pre-trained Hugging Face folder (default: all-MiniLM-L6-v2, converted into "
          + "weights/ on first use).")
  Path model;

  @Option(names = "--train", paramLabel = "FILE", required = true,
      description = "Labelled training data (.tsv, .csv, .jsonl).")
  Path train;

  @Option(names = "--eval", paramLabel = "FILE",
      description = "Evaluation data: evaluated every epoch (or --eval-every steps); the best "
          + "model is kept.")
  Path eval;

  @Option(names = "--test", paramLabel = "FILE",
      description = "Test data, evaluated once with the final (best) model.")
  Path test;

  @Option(names = "--output", paramLabel = "DIR",
      description = "Output folder (default: runs/finetune-<date>-<time>; with --resume: the "
          + "resumed run's).")
  Path output;

  @Option(names = "--epochs", paramLabel = "N", defaultValue = "3",
      description = "Epochs (default: ${DEFAULT-VALUE}).")
  int epochs;

  @Option(names = "--max-steps", paramLabel = "N", defaultValue = "-1",
      description = "Optimizer steps in all, overriding --epochs (default: off).")
  int maxSteps;

  @Mixin DataOptions data;

  @Option(names = "--grad-accum", paramLabel = "N", defaultValue = "1",
      description = "Batches accumulated per optimizer step (default: ${DEFAULT-VALUE}).")
  int gradAccum;

  @Option(names = "--lr", paramLabel = "F", defaultValue = "5e-5",
      description = "Peak learning rate (default: ${DEFAULT-VALUE}).")
  double lr;

  @Option(names = "--weight-decay", paramLabel = "F", defaultValue = "0.01",
      description = "AdamW weight decay, not on biases and LayerNorm (default: ${DEFAULT-VALUE}).")
  double weightDecay;

  @Option(names = "--warmup-ratio", paramLabel = "F", defaultValue = "0.06",
      description = "Linear warmup over ceil(F * steps) steps (default: ${DEFAULT-VALUE}).")
  double warmupRatio;

  @Option(names = "--scheduler", paramLabel = "linear|cosine|constant", defaultValue = "linear",
      description = "Learning-rate decay after the warmup (default: ${DEFAULT-VALUE}).")
  String scheduler;

  @Option(names = "--max-grad-norm", paramLabel = "F", defaultValue = "1.0",
      description = "Gradient clipping by global norm; 0 turns it off (default: ${DEFAULT-VALUE}).")
  double maxGradNorm;

  @Option(names = "--seed", paramLabel = "N", defaultValue = "42",
      description = "Seed of the data order, dropout and new weights; CPU runs repeat bit for bit "
          + "(default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--graphs", arity = "0..1", fallbackValue = "true",
      description = "Capture each training step's device work into a graph per batch shape (CUDA "
      + "graphs) and replay it (gradient accumulation 1 only): true or false. Default: the system "
      + "property bertj.graphs, else false (not yet measured on a GPU).")
  Boolean graphs;

  @Option(names = "--freeze-encoder",
      description = "Train only the pooler and the classifier.")
  boolean freezeEncoder;

  @Option(names = "--problem-type", paramLabel = "single_label|multi_label|regression",
      description = "Default: inferred from the labels (a|b: multi_label; integers or words: "
          + "single_label; other numbers: regression).")
  String problemType;

  @Option(names = "--limit", paramLabel = "N", defaultValue = "-1",
      description = "Use only the first N rows of each data file (default: all).")
  int limit;

  @Option(names = "--eval-every", paramLabel = "N", defaultValue = "0",
      description = "Evaluate every N steps (default: every epoch).")
  int evalEvery;

  @Option(names = "--early-stopping-patience", paramLabel = "N", defaultValue = "0",
      description = "Stop after N evaluations without improvement (default: off).")
  int patience;

  @Option(names = "--resume", paramLabel = "DIR",
      description = "Continue the run saved in DIR (an output folder) on the same trajectory; "
          + "give the same data and flags.")
  Path resume;

  static ProblemType parseProblemType(String s) {
    if (s == null) {
      return null;
    }
    return switch (s.trim().toLowerCase(java.util.Locale.ROOT)) {
      case "single_label", "single_label_classification" ->
          ProblemType.SINGLE_LABEL_CLASSIFICATION;
      case "multi_label", "multi_label_classification" -> ProblemType.MULTI_LABEL_CLASSIFICATION;
      case "regression" -> ProblemType.REGRESSION;
      default -> throw new IllegalArgumentException("unknown --problem-type '" + s
          + "': expected single_label, multi_label or regression");
    };
  }

  @Override
  public Integer call() {
    data.check();
    Path modelDir = model != null ? model : MiniLmConverter.ensureConverted();
    Path out = output;
    if (out == null && resume == null) {
      out = Path.of("runs", "finetune-"
          + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
    }
    Trainer.Builder b = Trainer.builder().setModel(modelDir).setTrainData(train)
        .optEvalData(eval).optOutputDir(out).optEpochs(epochs).optMaxSteps(maxSteps)
        .optBatchSize(data.batchSize).optGradAccum(gradAccum).optLearningRate(lr)
        .optWeightDecay(weightDecay).optWarmupRatio(warmupRatio)
        .optScheduler(LrSchedule.Kind.parse(scheduler)).optMaxGradNorm(maxGradNorm)
        .optMaxLength(data.maxLen).optSeed(seed).optDevice(data.device())
        .optPrecision(data.precision)
        .optFreezeEncoder(freezeEncoder).optProblemType(parseProblemType(problemType))
        .optGraphs(graphs != null ? graphs : GraphCache.enabledByDefault())
        .optColumns(data.columns()).optLimit(limit).optEvalEvery(evalEvery)
        .optEarlyStoppingPatience(patience).optResume(resume)
        .optListener(TerminalProgress.forStderr());
    if (test != null) {
      Examples.read(test); // a missing or empty test file fails now, not after training
    }
    try (Trainer t = b.build()) {
      TrainResult r = t.fit();
      Map<String, Object> result = new LinkedHashMap<>();
      result.put("train", r.toJson());
      if (t.evalExamples() != null) {
        Evaluation ev = r.bestEval() != null ? r.bestEval() : t.evaluate(t.evalExamples());
        result.put("eval", withTruncated(ev, t.evalExamples().truncated()));
      }
      if (test != null) {
        System.err.println("bertj: evaluating " + test);
        Examples te = Examples.encode(Examples.read(test), data.columns(), t.tokenizer(),
            Math.min(data.maxLen, t.config().getMaxPositionEmbeddings()), t.labels(), limit);
        result.put("test", withTruncated(t.evaluate(te), te.truncated()));
      }
      result.put("output", t.outputDir() == null ? null : t.outputDir().toString());
      System.out.println(Json.line(result));
    }
    return 0;
  }

  static Map<String, Object> withTruncated(Evaluation ev, int truncated) {
    Map<String, Object> m = ev.toJson();
    if (truncated > 0) {
      m.put("truncated", truncated);
    }
    return m;
  }
}
