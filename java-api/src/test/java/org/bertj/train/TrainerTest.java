package org.bertj.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.bertj.backend.Backend;
import org.bertj.io.BertConfig.ProblemType;
import org.bertj.io.DatasetException;
import org.bertj.model.Parameter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Trainer on the tiny task (tiny-bert, synthetic keyword data), CPU. */
class TrainerTest {
  @TempDir static Path tmp;
  static Backend be;
  static Path model;       // dropout 0.1
  static Path modelNoDrop; // dropout 0
  static Path train;
  static Path dev;

  @BeforeAll
  static void setUp() {
    be = TinyTask.cpu();
    model = TinyTask.modelDir(tmp.resolve("tiny"), 0.1);
    modelNoDrop = TinyTask.modelDir(tmp.resolve("tiny-nodrop"), 0.0);
    train = TinyTask.binary(tmp.resolve("train.tsv"), 320, 1);
    dev = TinyTask.binary(tmp.resolve("dev.tsv"), 100, 2);
  }

  @AfterAll
  static void tearDown() {
    be.close();
  }

  static float[] values(Trainer t) {
    return be.download(t.model().parameters().values());
  }

  @Test
  void learnsTheTinyTask() {
    try (Trainer t = TinyTask.builder(model, train, be).optEvalData(dev).optEpochs(4)
        .build()) {
      TrainResult r = t.fit();
      System.out.println("tiny task: " + r.bestEval() + " (last " + r.lastEval() + ")");
      assertEquals(80, r.steps());
      assertEquals(4 * 320, r.samples());
      Evaluation ev = r.bestEval();
      assertNotNull(ev);
      assertTrue(ev.get("accuracy") >= 0.85, "held-out accuracy " + ev);
      assertTrue(ev.get("macro_f1") >= 0.85, "macro-F1 " + ev);
      assertEquals(100, ev.n());
    }
  }

  @Test
  void sameSeedSameWeightsBitForBit() {
    float[][] w = new float[3][];
    long[] seeds = {7, 7, 8};
    for (int i = 0; i < 3; i++) {
      try (Trainer t = TinyTask.builder(model, train, be).optMaxSteps(6).optSeed(seeds[i])
          .build()) {
        t.fit();
        w[i] = values(t);
      }
    }
    assertArrayEquals(w[0], w[1], "two runs with seed 7 differ");
    assertFalse(Arrays.equals(w[0], w[2]), "seeds 7 and 8 gave the same weights");
  }

  @Test
  void graphsTrainBitForBitLikeEagerSteps() {
    // 30 steps with dropout, evaluation every 7 steps (its batches re-lay the workspace and
    // invalidate the graphs) and length-grouped batches of several shapes: the steps replayed
    // from graphs (the CPU's emulation) give the eager run's weights and losses exactly.
    float[][] w = new float[2][];
    Evaluation[] ev = new Evaluation[2];
    long[] stats = null;
    for (int i = 0; i < 2; i++) {
      try (Trainer t = TinyTask.builder(model, train, be).optEvalData(dev).optMaxSteps(30)
          .optEvalEvery(7).optGraphs(i == 1).build()) {
        TrainResult r = t.fit();
        w[i] = values(t);
        ev[i] = r.lastEval();
        if (i == 1) {
          stats = t.graphStats();
        }
      }
    }
    assertArrayEquals(w[0], w[1], "graph replays changed the weights");
    assertEquals(ev[0].get("loss"), ev[1].get("loss"), 0.0);
    assertEquals(0, stats[3], "failed captures");
    assertTrue(stats[2] >= 5, "replays " + Arrays.toString(stats));
    assertEquals(30, stats[0] + stats[2], "every step either eager or replayed");
  }

  @Test
  void resumeContinuesTheSameTrajectory() throws IOException {
    // 30 steps cross the epoch boundary (20 updates per epoch), with dropout, evaluation every
    // 7 steps (best model kept) and a stop at step 13, between evaluations.
    Path full = tmp.resolve("run-full");
    Path cut = tmp.resolve("run-cut");
    try (Trainer t = TinyTask.builder(model, train, be).optEvalData(dev).optMaxSteps(30)
        .optEvalEvery(7).optOutputDir(full).build()) {
      t.fit();
    }
    try (Trainer t = TinyTask.builder(model, train, be).optEvalData(dev).optMaxSteps(30)
        .optEvalEvery(7).optOutputDir(cut).optStopAfterSteps(13).build()) {
      TrainResult r = t.fit();
      assertEquals(13, r.steps());
    }
    JsonNode st = new ObjectMapper().readTree(cut.resolve("checkpoint/trainer_state.json").toFile());
    assertEquals(13, st.get("global_step").asInt());
    try (Trainer t = TinyTask.builder(model, train, be).optEvalData(dev).optMaxSteps(30)
        .optEvalEvery(7).optResume(cut).build()) {
      assertEquals(cut.toAbsolutePath(), t.outputDir().toAbsolutePath());
      TrainResult r = t.fit();
      assertEquals(30, r.steps());
      assertEquals(17 * 16, r.samples());
    }
    for (String f : List.of("checkpoint/model.safetensors", "checkpoint/optimizer.safetensors",
        "model.safetensors")) {
      assertArrayEquals(Files.readAllBytes(full.resolve(f)), Files.readAllBytes(cut.resolve(f)),
          f + " differs between the uninterrupted and the resumed run");
    }
    assertEquals(lossLines(full), lossLines(cut));
    // resuming with other flags is refused, naming them
    TrainingException e = assertThrows(TrainingException.class, () -> TinyTask
        .builder(model, train, be).optMaxSteps(30).optBatchSize(8).optResume(cut).build().fit());
    assertTrue(e.getMessage().contains("batch size 16 vs 8"), e.getMessage());
  }

  static List<String> lossLines(Path run) throws IOException {
    return Files.readAllLines(run.resolve("metrics.jsonl")).stream()
        .map(l -> l.replaceAll(",\"(samples_per_s|seconds|eval_seconds)\":[0-9.Ee-]+", ""))
        .toList();
  }

  @Test
  void gradientAccumulationMatchesOneBigBatch() {
    Path t32 = TinyTask.binary(tmp.resolve("train32.tsv"), 32, 5);
    float[] g1;
    float[] g2;
    float[] w1;
    float[] w2;
    float[] w0;
    try (Trainer t = TinyTask.builder(modelNoDrop, t32, be).optBatchSize(32).optMaxSteps(1)
        .optWarmupRatio(0).build()) {
      w0 = values(t);
      t.fit();
      g1 = be.download(t.model().parameters().grads());
      w1 = values(t);
    }
    try (Trainer t = TinyTask.builder(modelNoDrop, t32, be).optBatchSize(16).optGradAccum(2)
        .optMaxSteps(1).optWarmupRatio(0).build()) {
      t.fit();
      g2 = be.download(t.model().parameters().grads());
      w2 = values(t);
    }
    assertTrue(relErr(g2, g1) < 1e-5, "gradient rel err " + relErr(g2, g1));
    float[] d1 = new float[w0.length];
    float[] d2 = new float[w0.length];
    for (int i = 0; i < w0.length; i++) {
      d1[i] = w1[i] - w0[i];
      d2[i] = w2[i] - w0[i];
    }
    assertTrue(relErr(d2, d1) < 1e-2, "update rel err " + relErr(d2, d1));
  }

  static double relErr(float[] a, float[] ref) {
    double n = 0;
    double d = 0;
    for (int i = 0; i < a.length; i++) {
      n += ((double) a[i] - ref[i]) * ((double) a[i] - ref[i]);
      d += (double) ref[i] * ref[i];
    }
    return Math.sqrt(n / d);
  }

  @Test
  void earlyStoppingStopsAfterPatience() {
    // lr 1e-12: the model does not change, so no evaluation improves on the first
    try (Trainer t = TinyTask.builder(model, train, be).optEvalData(dev).optLearningRate(1e-12)
        .optEvalEvery(2).optEarlyStoppingPatience(2).build()) {
      TrainResult r = t.fit();
      assertTrue(r.stoppedEarly());
      assertEquals(6, r.steps()); // evaluations at 2 (best), 4, 6
      assertEquals(2, r.bestStep());
      assertTrue(t.totalSteps() > 6);
    }
  }

  @Test
  void crashWhileSavingKeepsThePreviousCheckpoint() throws IOException {
    Path out = tmp.resolve("run-crash");
    AtomicInteger saves = new AtomicInteger();
    Trainer.midCheckpointHook = () -> {
      if (saves.incrementAndGet() == 2) {
        throw new IllegalStateException("simulated crash");
      }
    };
    try (Trainer t = TinyTask.builder(model, train, be).optMaxSteps(6).optSaveEvery(3)
        .optOutputDir(out).build()) {
      TrainingException e = assertThrows(TrainingException.class, t::fit);
      assertTrue(e.getMessage().contains("previous checkpoint") && e.getMessage()
          .contains("is intact"), e.getMessage());
    } finally {
      Trainer.midCheckpointHook = null;
    }
    JsonNode st = new ObjectMapper().readTree(out.resolve("checkpoint/trainer_state.json").toFile());
    assertEquals(3, st.get("global_step").asInt());
    assertFalse(Files.exists(out.resolve("checkpoint.tmp")));
    assertEquals(Trainer.checkpointIn(out), out.resolve("checkpoint"));
    // a crash between the two renames leaves checkpoint.old, which resume finds
    Files.move(out.resolve("checkpoint"), out.resolve("checkpoint.old"));
    assertEquals(out.resolve("checkpoint.old"), Trainer.checkpointIn(out));
    try (Trainer t = TinyTask.builder(model, train, be).optMaxSteps(6).optSaveEvery(3)
        .optResume(out).optOutputDir(out).build()) {
      assertEquals(6, t.fit().steps());
    }
  }

  @Test
  void nanLossStopsWithAClearMessage() {
    Path out = tmp.resolve("run-nan");
    try (Trainer t = TinyTask.builder(model, train, be).optMaxSteps(5).optOutputDir(out)
        .build()) {
      Parameter w = t.model().parameters().get("classifier.weight");
      float[] nan = new float[(int) w.numel()];
      Arrays.fill(nan, Float.NaN);
      be.upload(w.value(), nan);
      TrainingException e = assertThrows(TrainingException.class, t::fit);
      assertTrue(e.getMessage().contains("the training loss became NaN at step 1"),
          e.getMessage());
    }
  }

  @Test
  void unwritableOutputIsAClearError() throws IOException {
    Path file = TinyTask.write(tmp.resolve("a-file"), "x");
    TrainingException e = assertThrows(TrainingException.class, () -> TinyTask
        .builder(model, train, be).optOutputDir(file.resolve("out")).build());
    assertTrue(e.getMessage().startsWith("cannot write to the output folder " + file), e.getMessage());
  }

  @Test
  void stringLabelsAreSortedAndSaved() throws IOException {
    Path f = TinyTask.tsv(tmp.resolve("strings.tsv"), 64, 3, (y, r) -> y == 1 ? "pos" : "neg");
    Path out = tmp.resolve("run-strings");
    try (Trainer t = TinyTask.builder(model, f, be).optMaxSteps(2).optOutputDir(out).build()) {
      assertEquals(List.of("neg", "pos"), t.labels().names());
      t.fit();
    }
    JsonNode c = new ObjectMapper().readTree(out.resolve("config.json").toFile());
    assertEquals("neg", c.get("id2label").get("0").asText());
    assertEquals(1, c.get("label2id").get("pos").asInt());
    assertEquals("single_label_classification", c.get("problem_type").asText());
    assertEquals("BertForSequenceClassification", c.get("architectures").get(0).asText());
  }

  @Test
  void multiLabelSmoke() {
    String[] tags = TinyTask.EXTRA;
    Path f = TinyTask.tsv(tmp.resolve("multi.tsv"), 96, 4, (y, r) -> {
      StringBuilder sb = new StringBuilder(y == 1 ? "positive" : "negative");
      if (r.nextBoolean()) {
        sb.append('|').append(tags[r.nextInt(tags.length)]);
      }
      return sb.toString();
    });
    try (Trainer t = TinyTask.builder(model, f, be).optEvalData(f).optMaxSteps(4).build()) {
      assertEquals(ProblemType.MULTI_LABEL_CLASSIFICATION, t.labels().problemType());
      assertEquals(6, t.labels().size());
      Evaluation ev = t.fit().lastEval();
      assertTrue(Double.isFinite(ev.get("loss")) && ev.get("accuracy") >= 0
          && ev.get("macro_f1") >= 0, ev.toString());
      assertEquals(6, t.config().getNumLabels());
    }
  }

  @Test
  void regressionSmoke() {
    Path f = TinyTask.tsv(tmp.resolve("reg.tsv"), 96, 5,
        (y, r) -> String.valueOf(y * 2.0 + r.nextGaussian() * 0.1));
    try (Trainer t = TinyTask.builder(model, f, be).optEvalData(f).optMaxSteps(4).build()) {
      assertEquals(ProblemType.REGRESSION, t.labels().problemType());
      assertEquals(List.of("LABEL_0"), t.labels().names());
      Evaluation ev = t.fit().lastEval();
      assertEquals(List.of("mse", "pearson", "loss"), List.copyOf(ev.metrics().keySet()));
      assertTrue(Double.isFinite(ev.get("mse")) && Double.isFinite(ev.get("pearson")),
          ev.toString());
      assertEquals(ev.get("mse"), ev.get("loss"), 1e-6);
    }
  }

  @Test
  void sentencePairs() {
    Path f = TinyTask.write(tmp.resolve("pairs.csv"), "premise,hypothesis,label\n"
        + "the movie was good,\"a good, good film\",same\n"
        + "the plot was bad,a great story,different\n"
        + "we saw it today,we saw it today,same\n"
        + "sad end,happy end,different\n");
    try (Trainer t = TinyTask.builder(model, f, be).optMaxSteps(2)
        .optColumns(new TextColumns("premise", "hypothesis", "label")).build()) {
      int[] types = t.trainExamples().encoding(0).tokenTypeIds();
      assertEquals(1, types[types.length - 1]);
      assertEquals(0, types[0]);
      assertEquals(2, t.fit().steps());
    }
  }

  @Test
  void longSequencesAreTruncatedAndCounted() {
    try (Trainer t = TinyTask.builder(model, train, be).optMaxLength(6).optMaxSteps(1).build()) {
      Examples ex = t.trainExamples();
      assertTrue(ex.truncated() > 100, "truncated " + ex.truncated());
      assertTrue(Arrays.stream(ex.lengths()).allMatch(l -> l <= 6));
      assertEquals(ex.truncated(), t.fit().truncated());
    }
  }

  @Test
  void freezeEncoderTrainsOnlyTheHead() {
    try (Trainer t = TinyTask.builder(model, train, be).optMaxSteps(3).optFreezeEncoder(true)
        .build()) {
      float[] before = values(t);
      t.fit();
      float[] after = values(t);
      for (Parameter p : t.model().parameters().list()) {
        int o = (int) p.offset();
        boolean changed = !Arrays.equals(Arrays.copyOfRange(before, o, o + (int) p.numel()),
            Arrays.copyOfRange(after, o, o + (int) p.numel()));
        boolean head = p.name().startsWith("classifier.") || p.name().startsWith("bert.pooler.");
        assertEquals(head, changed, p.name());
      }
    }
  }

  @Test
  void weightDecayGroupingIsHuggingFaces() {
    // transformers decays every parameter but biases and LayerNorm weights; the store puts those
    // after nDecay, and AdamW decays [0, nDecay) only
    try (Trainer t = TinyTask.builder(model, train, be).optMaxSteps(1).build()) {
      var ps = t.model().parameters();
      for (Parameter p : ps.list()) {
        boolean hfDecay = !(p.name().endsWith(".bias") || p.name().contains("LayerNorm."));
        assertEquals(hfDecay, p.offset() + p.numel() <= ps.nDecay(), p.name());
        assertEquals(hfDecay, p.decay(), p.name());
      }
      assertTrue(ps.nDecay() > 0 && ps.nDecay() < ps.size());
    }
  }

  // ---------------------------------------------------------------- bad input

  static String buildError(Path trainFile, Path evalFile) {
    Trainer.Builder b = TinyTask.builder(model, trainFile, be).optEvalData(evalFile);
    DatasetException e = assertThrows(DatasetException.class, b::build);
    return e.getMessage();
  }

  @Test
  void badDataFilesNameTheFileAndLine() throws IOException {
    Path missing = tmp.resolve("nope.tsv");
    assertEquals(missing + ": no such file", buildError(missing, null));
    Path empty = TinyTask.write(tmp.resolve("empty.tsv"), "sentence\tlabel\n");
    assertEquals(empty + ": no data rows (only a header)", buildError(empty, null));
    Path noLabel = TinyTask.write(tmp.resolve("nolabel.tsv"), "sentence\tstars\nfine\t1\n");
    assertTrue(buildError(noLabel, null).contains("no column 'label' (columns: sentence, stars)"));
    Path ragged = TinyTask.write(tmp.resolve("ragged.tsv"), "sentence\tlabel\ngood\t1\nbad\t0\textra\n");
    assertEquals(ragged + ": line 3: 3 fields, but the header names 2 columns (sentence, label)",
        buildError(ragged, null));
    Path quote = TinyTask.write(tmp.resolve("quote.csv"), "sentence,label\ngood,1\n\"bad\"x,0\n");
    assertTrue(buildError(quote, null).startsWith(quote + ": line 3: unexpected character 'x'"),
        buildError(quote, null));
    Path utf = tmp.resolve("latin1.tsv");
    Files.write(utf, new byte[] {'s', 'e', 'n', 't', 'e', 'n', 'c', 'e', '\t', 'l', 'a', 'b', 'e',
        'l', '\n', 'c', 'a', 'f', (byte) 0xE9, '\t', '1', '\n'});
    assertEquals(utf + ": line 2: not valid UTF-8", buildError(utf, null));
    Path unseen = TinyTask.write(tmp.resolve("unseen.tsv"), "sentence\tlabel\ngood\t1\nmeh\t7\n");
    assertEquals(unseen + ": line 3: label '7' was not in the training data (labels: 0, 1)",
        buildError(train, unseen));
  }
}
