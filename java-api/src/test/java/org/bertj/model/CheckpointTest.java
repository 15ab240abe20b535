package org.bertj.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;
import org.bertj.backend.CpuBackend;
import org.bertj.io.CheckpointException;
import org.bertj.io.SafetensorsReader;
import org.bertj.io.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading and saving Hugging Face folders: prefixes, missing or mis-shaped tensors, round trip. */
class CheckpointTest {
  @TempDir
  Path tmp;

  /**
   * Copies tiny-bert into a folder, renaming keys (rename returns null to drop one) and replacing
   * one tensor's shape when {@code reshape} names it (its data is cut to fit).
   */
  private Path variant(String name, Function<String, String> rename, String reshape,
      long[] shape) throws IOException {
    Path src = TestUtil.tinyBert();
    Path dir = Files.createDirectories(tmp.resolve(name));
    Files.copy(src.resolve("config.json"), dir.resolve("config.json"),
        StandardCopyOption.REPLACE_EXISTING);
    SafetensorsWriter w = new SafetensorsWriter();
    try (SafetensorsReader r = SafetensorsReader.open(src.resolve("model.safetensors"))) {
      for (String k : r.names()) {
        String nk = rename.apply(k);
        if (nk == null) {
          continue;
        }
        float[] v = r.readFloats(k);
        long[] s = r.shape(k);
        if (k.equals(reshape)) {
          s = shape;
          v = java.util.Arrays.copyOf(v, Math.toIntExact(org.bertj.backend.Tensor.numel(shape)));
        }
        w.putF32(nk, v, s);
      }
    }
    w.write(dir.resolve("model.safetensors"));
    return dir;
  }

  private static float[] logits(CpuBackend be, BertForSequenceClassification m) {
    m.forward(ModelBehaviourTest.goldenBatch());
    return m.logitsArray();
  }

  @Test
  void missingRequiredTensorIsAClearErrorAndLeaksNothing() throws IOException {
    String gone = "bert.encoder.layer.1.output.dense.weight";
    Path dir = variant("missing", k -> k.equals(gone) ? null : k, null, null);
    try (CpuBackend be = new CpuBackend()) {
      CheckpointException e = assertThrows(CheckpointException.class,
          () -> BertForSequenceClassification.fromPretrained(be, dir, 0L));
      assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
      assertTrue(e.getMessage().contains(gone), e.getMessage());
      assertTrue(e.getMessage().contains("missing"), e.getMessage());
      assertEquals(0, be.liveTensors(), "a failed load frees its store");
    }
  }

  @Test
  void wrongShapeIsAClearErrorAndLeaksNothing() throws IOException {
    String bad = "bert.encoder.layer.0.intermediate.dense.bias";
    Path dir = variant("shape", k -> k, bad, new long[] {255});
    try (CpuBackend be = new CpuBackend()) {
      CheckpointException e = assertThrows(CheckpointException.class,
          () -> BertForSequenceClassification.fromPretrained(be, dir, 0L));
      assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
      assertTrue(e.getMessage().contains(bad), e.getMessage());
      assertTrue(e.getMessage().contains("[255]") && e.getMessage().contains("[256]"),
          e.getMessage());
      assertEquals(0, be.liveTensors());
    }
  }

  @Test
  void keysWithoutThePrefixLoadTheSameModel() throws IOException {
    Path dir = variant("noprefix", k -> k.startsWith("bert.") ? k.substring(5) : k, null, null);
    try (CpuBackend be = new CpuBackend()) {
      float[] ref;
      try (BertForSequenceClassification m =
          BertForSequenceClassification.fromPretrained(be, TestUtil.tinyBert(), 0L)) {
        ref = logits(be, m);
      }
      try (BertForSequenceClassification m =
          BertForSequenceClassification.fromPretrained(be, dir, 0L)) {
        assertArrayEquals(ref, logits(be, m));
      }
      assertEquals(0, be.liveTensors());
    }
  }

  @Test
  void missingPoolerAndClassifierAreInitialisedAndReportedOnce() throws IOException {
    Path dir = variant("headless",
        k -> k.startsWith("classifier.") || k.startsWith("bert.pooler.") ? null : k, null, null);
    PrintStream old = System.err;
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    try (CpuBackend be = new CpuBackend()) {
      System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
      float[] a;
      float[] b;
      try (BertForSequenceClassification m =
          BertForSequenceClassification.fromPretrained(be, dir, 5L)) {
        a = be.download(m.parameters().get("classifier.weight").value());
        float[] bias = be.download(m.parameters().get("classifier.bias").value());
        assertArrayEquals(new float[3], bias, "zero bias");
        double sd = TestUtil.norm(a) / Math.sqrt(a.length);
        assertTrue(sd > 0.01 && sd < 0.03, "normal(0, 0.02): sd " + sd);
        logits(be, m);
      }
      try (BertForSequenceClassification m =
          BertForSequenceClassification.fromPretrained(be, dir, 5L)) {
        b = be.download(m.parameters().get("classifier.weight").value());
      }
      assertArrayEquals(a, b, "seeded");
      assertEquals(0, be.liveTensors());
    } finally {
      System.setErr(old);
    }
    String[] lines = err.toString(StandardCharsets.UTF_8).strip().split("\n");
    assertEquals(2, lines.length, "one line per load: " + err);
    for (String n : List.of("bert.pooler.dense.weight", "bert.pooler.dense.bias",
        "classifier.weight", "classifier.bias")) {
      assertTrue(lines[0].contains(n), lines[0]);
    }
  }

  @Test
  void saveWritesTransformersKeysAndReloadsExactly() throws IOException {
    Path out = tmp.resolve("saved");
    try (CpuBackend be = new CpuBackend()) {
      float[] ref;
      try (BertForSequenceClassification m =
          BertForSequenceClassification.fromPretrained(be, TestUtil.tinyBert(), 0L)) {
        ref = logits(be, m);
        m.save(out);
      }
      Set<String> keys;
      Set<String> orig;
      try (SafetensorsReader r = SafetensorsReader.open(out.resolve("model.safetensors"));
          SafetensorsReader o =
              SafetensorsReader.open(TestUtil.tinyBert().resolve("model.safetensors"))) {
        keys = new TreeSet<>(r.names());
        orig = new TreeSet<>(o.names());
        for (String k : r.names()) {
          assertEquals(org.bertj.io.DType.F32, r.dtype(k));
          assertArrayEquals(o.readFloats(k), r.readFloats(k), k);
        }
      }
      assertEquals(orig, keys);
      try (BertForSequenceClassification m =
          BertForSequenceClassification.fromPretrained(be, out, 0L)) {
        assertArrayEquals(ref, logits(be, m));
        assertEquals(3, m.config().getNumLabels());
      }
      assertEquals(0, be.liveTensors());
    }
  }
}
