package org.bertj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.bertj.io.SafetensorsReader;
import org.bertj.train.TinyTask;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** finetune -> evaluate -> predict through the command line, on the tiny task. */
class TrainCommandsTest {
  static final ObjectMapper JSON = new ObjectMapper();
  @TempDir static Path tmp;
  static Path model;
  static Path train;
  static Path test;

  @BeforeAll
  static void setUp() {
    model = TinyTask.modelDir(tmp.resolve("tiny"), 0.1);
    train = TinyTask.tsv(tmp.resolve("train.tsv"), 160, 1, (y, r) -> y == 1 ? "pos" : "neg");
    test = TinyTask.tsv(tmp.resolve("test.tsv"), 40, 2, (y, r) -> y == 1 ? "pos" : "neg");
  }

  record Run(int code, String out, String err) {
    List<String> lines() {
      return out.lines().filter(l -> !l.isBlank()).toList();
    }

    JsonNode last() throws Exception {
      List<String> l = lines();
      return JSON.readTree(l.get(l.size() - 1));
    }
  }

  static synchronized Run run(String... args) {
    PrintStream oldOut = System.out;
    PrintStream oldErr = System.err;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    try {
      System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
      System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
      var cl = Main.commandLine();
      cl.setOut(new java.io.PrintWriter(System.out, true));
      cl.setErr(new java.io.PrintWriter(System.err, true));
      int code = cl.execute(args);
      return new Run(code, out.toString(StandardCharsets.UTF_8),
          err.toString(StandardCharsets.UTF_8));
    } finally {
      System.setOut(oldOut);
      System.setErr(oldErr);
    }
  }

  /** bench on a model folder: one JSON line; --min-length pads random lengths with a mask. */
  @Test
  void benchPrintsOneJsonLine() throws Exception {
    for (String mode : List.of("train", "infer")) {
      Run full = run("bench", "--model", model.toString(), "--mode", mode, "--batch", "4",
          "--seq", "16", "--warmup", "1", "--iters", "2", "--device", "cpu");
      assertEquals(0, full.code(), full.err());
      assertEquals(1, full.lines().size(), full.out());
      JsonNode f = full.last();
      assertEquals(mode.equals("train") ? "train_step" : "inference", f.get("bench").asText());
      assertTrue(f.get("ms_per_step").asDouble() > 0);
      assertTrue(!f.has("real_tokens"));
      Run padded = run("bench", "--model", model.toString(), "--mode", mode, "--batch", "4",
          "--seq", "16", "--min-length", "4", "--warmup", "1", "--iters", "2", "--device", "cpu");
      assertEquals(0, padded.code(), padded.err());
      JsonNode p = padded.last();
      long real = p.get("real_tokens").asLong();
      assertTrue(real >= 4 * 4 && real <= 4 * 16, "real tokens " + real);
    }
  }

  @Test
  void finetuneEvaluatePredictRoundTrip() throws Exception {
    Path out = tmp.resolve("run");
    Run ft = run("finetune", "--model", model.toString(), "--train", train.toString(),
        "--eval", test.toString(), "--test", test.toString(), "--output", out.toString(),
        "--epochs", "2", "--batch-size", "16", "--lr", "1e-3", "--device", "cpu");
    assertEquals(0, ft.code(), ft.err());
    JsonNode r = ft.last();
    assertEquals(Set.of("train", "eval", "test", "output"), fields(r));
    assertEquals(20, r.get("train").get("steps").asInt());
    assertTrue(r.get("train").get("samples_per_s").asDouble() > 0);
    assertTrue(r.get("train").has("seconds"));
    for (String k : List.of("accuracy", "macro_f1", "loss", "n")) {
      assertTrue(r.get("test").has(k), k);
    }
    assertEquals(40, r.get("test").get("n").asInt());
    assertEquals(out.toString(), r.get("output").asText());
    assertTrue(ft.err().contains("step 20/20"), ft.err()); // plain progress (not a terminal)

    // the output folder
    for (String f : List.of("config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl",
        "training.png", "checkpoint/trainer_state.json", "checkpoint/optimizer.safetensors",
        "checkpoint/model.safetensors")) {
      assertTrue(Files.isRegularFile(out.resolve(f)), f);
    }
    JsonNode cfg = JSON.readTree(out.resolve("config.json").toFile());
    assertEquals("neg", cfg.get("id2label").get("0").asText());
    assertEquals(1, cfg.get("label2id").get("pos").asInt());
    assertEquals("single_label_classification", cfg.get("problem_type").asText());
    assertEquals("BertForSequenceClassification", cfg.get("architectures").get(0).asText());
    try (SafetensorsReader st = SafetensorsReader.open(out.resolve("model.safetensors"))) {
      assertTrue(st.contains("bert.encoder.layer.0.attention.self.query.weight"));
      assertTrue(st.contains("bert.embeddings.LayerNorm.weight"));
      assertTrue(st.contains("bert.pooler.dense.weight"));
      assertTrue(st.contains("classifier.weight"));
    }
    byte[] png = Files.readAllBytes(out.resolve("training.png"));
    assertEquals((byte) 0x89, png[0]);
    assertEquals('P', png[1]);
    List<String> metrics = Files.readAllLines(out.resolve("metrics.jsonl"));
    assertTrue(metrics.stream().anyMatch(l -> l.contains("\"loss\"")));
    assertTrue(metrics.stream().filter(l -> l.contains("\"eval_accuracy\"")).count() == 2);
    try (var s = Files.list(out)) {
      assertTrue(s.noneMatch(p -> p.getFileName().toString().endsWith(".tmp")));
    }

    // evaluate gives the same test metrics
    Run ev = run("evaluate", "--model", out.toString(), "--data", test.toString(), "--device",
        "cpu");
    assertEquals(0, ev.code(), ev.err());
    JsonNode e = ev.last();
    assertEquals(Set.of("accuracy", "macro_f1", "loss", "n"), fields(e));
    assertEquals(r.get("test").get("accuracy").asDouble(), e.get("accuracy").asDouble(), 1e-12);
    assertEquals(r.get("test").get("loss").asDouble(), e.get("loss").asDouble(), 1e-5);

    // predict: one line per row, in order, agreeing with evaluate's accuracy
    Run pr = run("predict", "--model", out.toString(), "--data", test.toString(), "--batch-size",
        "7", "--device", "cpu");
    assertEquals(0, pr.code(), pr.err());
    List<String> rows = pr.lines();
    assertEquals(40, rows.size());
    List<String> truth = Files.readAllLines(test).subList(1, 41);
    int right = 0;
    for (int i = 0; i < rows.size(); i++) {
      JsonNode p = JSON.readTree(rows.get(i));
      assertEquals(Set.of("label", "probabilities", "input_ids"), fields(p));
      double pn = p.get("probabilities").get("neg").asDouble();
      double pp = p.get("probabilities").get("pos").asDouble();
      assertEquals(1.0, pn + pp, 1e-9);
      assertEquals(pp > pn ? "pos" : "neg", p.get("label").asText());
      assertEquals(2, p.get("input_ids").get(0).asInt()); // [CLS]
      right += truth.get(i).endsWith("\t" + p.get("label").asText()) ? 1 : 0;
    }
    assertEquals(e.get("accuracy").asDouble(), right / 40.0, 1e-12);
  }

  static Set<String> fields(JsonNode n) {
    List<String> l = new ArrayList<>();
    n.fieldNames().forEachRemaining(l::add);
    return Set.copyOf(l);
  }

  @Test
  void badInputIsOneClearLine() {
    Path missing = tmp.resolve("missing.tsv");
    Run r = run("finetune", "--model", model.toString(), "--train", missing.toString(),
        "--device", "cpu", "--output", tmp.resolve("never").toString());
    assertEquals(1, r.code());
    assertEquals("bertj finetune: " + missing + ": no such file", r.err().strip());
    Run bad = run("finetune", "--model", model.toString(), "--train", train.toString(),
        "--scheduler", "step", "--output", tmp.resolve("never").toString());
    assertEquals(1, bad.code());
    assertTrue(bad.err().contains("unknown scheduler 'step'"), bad.err());
    Path unseen = TinyTask.write(tmp.resolve("unseen.tsv"), "sentence\tlabel\ngood\tpos\nbad\tmeh\n");
    Run ev = run("finetune", "--model", model.toString(), "--train", train.toString(), "--eval",
        unseen.toString(), "--output", tmp.resolve("never").toString(), "--device", "cpu");
    assertEquals(1, ev.code());
    assertTrue(ev.err().contains(unseen + ": line 3: label 'meh' was not in the training data"),
        ev.err());
  }
}
