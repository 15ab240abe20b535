package org.bertj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.bertj.SentenceEncoder;
import org.bertj.TinyModels;
import org.bertj.backend.Device;
import org.bertj.io.SafetensorsReader;
import org.bertj.io.SafetensorsWriter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code bertj embed} in-process: output format and order, and bad input as one clear line. */
class EmbedCommandTest {
  @TempDir static Path tmp;
  static Path model;
  static Path data;
  static final List<String> TEXTS = List.of("a charming film", "unflinchingly bleak and desperate",
      "ok", "allows us to hope that nolan is poised to embark a major career", "\"quoted\" text");

  @BeforeAll
  static void setUp() throws IOException {
    model = TinyModels.encoder(tmp.resolve("model"));
    StringBuilder sb = new StringBuilder("sentence\tlabel\n");
    for (String t : TEXTS) {
      sb.append(t).append("\t1\n");
    }
    data = Files.writeString(tmp.resolve("data.tsv"), sb.toString());
  }

  record Run(int code, String out, String err) {}

  static Run run(String... args) {
    CommandLine cl = Main.commandLine();
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    cl.setOut(new PrintWriter(out, true));
    cl.setErr(new PrintWriter(err, true));
    int code = cl.execute(args);
    return new Run(code, out.toString(), err.toString());
  }

  static float[][] parse(String jsonl) throws IOException {
    ObjectMapper om = new ObjectMapper();
    List<float[]> rows = new ArrayList<>();
    for (String line : jsonl.split("\n")) {
      if (!line.isEmpty()) {
        rows.add(om.readValue(line, float[].class));
      }
    }
    return rows.toArray(new float[0][]);
  }

  @Test
  void writesOneArrayPerRowInInputOrder() throws IOException {
    Path outFile = tmp.resolve("out/e.jsonl");
    Run r = run("embed", "--model", model.toString(), "--data", data.toString(), "--device",
        "cpu", "--batch-size", "2", "--output", outFile.toString());
    assertEquals(0, r.code(), r.err());
    assertEquals("", r.out());
    assertTrue(r.err().contains("5 embeddings of 16 floats"), r.err());
    float[][] got = parse(Files.readString(outFile));
    try (Stream<Path> s = Files.list(outFile.getParent())) {
      assertEquals(List.of(outFile), s.toList(), "temporary file left behind");
    }
    float[][] expected;
    try (SentenceEncoder enc = SentenceEncoder.builder().optModel(model).optDevice(Device.CPU)
        .build()) {
      expected = new float[TEXTS.size()][];
      for (int i = 0; i < TEXTS.size(); i++) {
        expected[i] = enc.embed(TEXTS.get(i)); // one at a time: no batching, no sorting
      }
    }
    assertEquals(TEXTS.size(), got.length);
    for (int i = 0; i < got.length; i++) {
      assertEquals(16, got[i].length);
      for (int k = 0; k < 16; k++) {
        assertEquals(expected[i][k], got[i][k], 1e-5 * (1 + Math.abs(expected[i][k])), "row " + i);
      }
    }
  }

  @Test
  void stdoutClsNormalized() throws IOException {
    Run r = run("embed", "--model", model.toString(), "--data", data.toString(), "--device",
        "cpu", "--pooling", "cls", "--normalize", "--max-len", "8");
    assertEquals(0, r.code(), r.err());
    float[][] got = parse(r.out());
    assertEquals(TEXTS.size(), got.length);
    for (float[] v : got) {
      double n = 0;
      for (float x : v) {
        n += x * (double) x;
      }
      assertEquals(1.0, n, 1e-5);
    }
    assertTrue(r.err().contains("pooling cls, normalized; max length 8"), r.err());
  }

  @Test
  void jsonlDataWithTextColumnOption() throws IOException {
    Path jsonl = Files.writeString(tmp.resolve("d.jsonl"),
        "{\"id\": 1, \"review\": \"good\"}\n{\"id\": 2, \"review\": \"bad\"}\n");
    Run r = run("embed", "--model", model.toString(), "--data", jsonl.toString(),
        "--text-column", "review", "--device", "cpu");
    assertEquals(0, r.code(), r.err());
    assertEquals(2, parse(r.out()).length);
  }

  /** Exit code non-zero, one line naming what is wrong, no stack trace, no output file. */
  static void assertClearFailure(Run r, String... mustContain) {
    assertNotEquals(0, r.code(), "exit code");
    String err = r.err().strip();
    List<String> errorLines = err.lines().filter(l -> l.startsWith("bertj embed: ")
        && !l.startsWith("bertj embed: 5 rows")).toList();
    assertEquals(1, errorLines.size(), err);
    for (String s : mustContain) {
      assertTrue(errorLines.get(0).contains(s), "'" + s + "' not in: " + err);
    }
    assertFalse(err.contains("\tat ") || err.contains("Exception"), "stack trace: " + err);
    assertEquals("", r.out());
  }

  private static Path copyModel(String name) throws IOException {
    Path dir = Files.createDirectories(tmp.resolve(name));
    for (String f : List.of("config.json", "model.safetensors", "tokenizer.json")) {
      Files.copy(model.resolve(f), dir.resolve(f), StandardCopyOption.REPLACE_EXISTING);
    }
    return dir;
  }

  private static Run embed(Path modelDir, Path dataFile, String... extra) {
    List<String> args = new ArrayList<>(List.of("embed", "--model", modelDir.toString(),
        "--data", dataFile.toString(), "--device", "cpu", "--output",
        tmp.resolve("never.jsonl").toString()));
    args.addAll(Arrays.asList(extra));
    Run r = run(args.toArray(new String[0]));
    assertFalse(Files.exists(tmp.resolve("never.jsonl")), "output written on failure");
    assertFalse(Files.exists(tmp.resolve("never.jsonl.tmp")), "temporary output left behind");
    return r;
  }

  @Test
  void truncatedSafetensors() throws IOException {
    Path dir = copyModel("truncated");
    Path st = dir.resolve("model.safetensors");
    byte[] b = Files.readAllBytes(st);
    Files.write(st, Arrays.copyOf(b, b.length / 2));
    Run r = embed(dir, data);
    System.out.println("truncated: " + r.err());
    assertClearFailure(r, st.toString());
  }

  @Test
  void brokenConfig() throws IOException {
    Path dir = copyModel("brokenconfig");
    Path cfg = dir.resolve("config.json");
    Files.writeString(cfg, "{\"hidden_size\": 16, \"num_hidden_layers\": ");
    Run r = embed(dir, data);
    System.out.println("broken config: " + r.err());
    assertClearFailure(r, cfg.toString());
  }

  @Test
  void incompleteConfig() throws IOException {
    Path dir = copyModel("incompleteconfig");
    Path cfg = dir.resolve("config.json");
    Files.writeString(cfg, Files.readString(cfg).replaceFirst("\"hidden_size\"\\s*:\\s*16\\s*,", ""));
    Run r = embed(dir, data);
    System.out.println("incomplete config: " + r.err());
    assertClearFailure(r, cfg.toString(), "hidden_size");
  }

  @Test
  void missingTensor() throws IOException {
    Path dir = copyModel("missing");
    Path st = dir.resolve("model.safetensors");
    String gone = "encoder.layer.1.output.dense.weight";
    SafetensorsWriter w = new SafetensorsWriter();
    try (SafetensorsReader r = SafetensorsReader.open(model.resolve("model.safetensors"))) {
      for (String k : r.names()) {
        if (!k.equals(gone)) {
          w.putF32(k, r.readFloats(k), r.shape(k));
        }
      }
    }
    w.write(st);
    Run r = embed(dir, data);
    System.out.println("missing tensor: " + r.err());
    assertClearFailure(r, st.toString(), gone);
  }

  @Test
  void dataWithoutTextColumn() throws IOException {
    Path bad = Files.writeString(tmp.resolve("reviews.tsv"), "review\tlabel\ngood\t1\n");
    Run r = embed(model, bad);
    System.out.println("no text column: " + r.err());
    assertClearFailure(r, bad.toString(), "sentence", "review");
    r = embed(model, bad, "--text-column", "body");
    System.out.println("no such column: " + r.err());
    assertClearFailure(r, bad.toString(), "'body'");
  }

  @Test
  void missingFilesAndBadOptions() throws IOException {
    Path nowhere = tmp.resolve("nowhere");
    Run r = embed(nowhere, data);
    System.out.println("no model: " + r.err());
    assertClearFailure(r, nowhere.toString());
    Path noData = tmp.resolve("nodata.tsv");
    r = embed(model, noData);
    System.out.println("no data: " + r.err());
    assertClearFailure(r, noData.toString());
    r = embed(model, data, "--pooling", "max");
    assertClearFailure(r, "pooling 'max'");
    r = embed(model, data, "--max-len", "1000");
    System.out.println("max len: " + r.err());
    assertClearFailure(r, "1000", "max_position_embeddings");
  }
}
