package org.bertj.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.BiFunction;
import org.bertj.backend.Backend;
import org.bertj.backend.Device;
import org.bertj.io.SafetensorsReader;
import org.bertj.io.SafetensorsWriter;

/**
 * A tiny task for fast training tests: the tiny-bert golden model (2 layers, hidden 64, random
 * weights, no classifier) with a small WordPiece tokenizer.json written here, and synthetic
 * data files in which the label follows keywords.
 */
public final class TinyTask {
  private TinyTask() {}

  static final String[] POS = {"good", "great", "fine", "nice", "happy", "love", "superb"};
  static final String[] NEG = {"bad", "awful", "poor", "sad", "hate", "dull", "terrible"};
  static final String[] FILLER = {"the", "a", "movie", "film", "was", "is", "and", "plot", "it",
      "story", "really", "very", "actor", "this", "that", "of", "in", "scene", "end", "music",
      "cast", "script", "we", "i", "saw", "today", "with", "friends", "some", "parts"};
  static final String[] EXTRA = {"sports", "politics", "science", "art"};

  /** The tiny-bert golden folder (system property bertj.golden.dir, set by surefire). */
  public static Path golden() {
    String dir = System.getProperty("bertj.golden.dir", "../../shared/golden");
    return Paths.get(dir).resolve("tiny-bert");
  }

  /** The CPU backend for tests. */
  public static Backend cpu() {
    return Backend.create(Device.CPU);
  }

  /**
   * Writes a model folder: tiny-bert's bert.* weights (no classifier), its config with the given
   * dropout, and a WordPiece tokenizer.json over the synthetic vocabulary.
   */
  public static Path modelDir(Path dir, double dropout) {
    try {
      Files.createDirectories(dir);
      ObjectMapper om = new ObjectMapper();
      ObjectNode cfg = (ObjectNode) om.readTree(golden().resolve("config.json").toFile());
      cfg.put("hidden_dropout_prob", dropout);
      cfg.put("attention_probs_dropout_prob", dropout);
      cfg.remove("id2label");
      cfg.remove("label2id");
      Files.writeString(dir.resolve("config.json"), om.writerWithDefaultPrettyPrinter()
          .writeValueAsString(cfg));
      SafetensorsWriter w = new SafetensorsWriter();
      try (SafetensorsReader r = SafetensorsReader.open(golden().resolve("model.safetensors"))) {
        for (String k : r.names()) {
          if (!k.startsWith("classifier.")) {
            w.putF32(k, r.readFloats(k), r.shape(k));
          }
        }
      }
      w.write(dir.resolve("model.safetensors"));
      writeTokenizer(dir.resolve("tokenizer.json"));
      return dir;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static void writeTokenizer(Path file) throws IOException {
    ObjectMapper om = new ObjectMapper();
    List<String> vocab = new ArrayList<>(List.of("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"));
    for (String[] ws : new String[][] {POS, NEG, FILLER, EXTRA}) {
      vocab.addAll(List.of(ws));
    }
    for (char c = 'a'; c <= 'z'; c++) {
      vocab.add(String.valueOf(c));
      vocab.add("##" + c);
    }
    for (String p : List.of(".", ",", "!", "?", "'", "-")) {
      vocab.add(p);
    }
    ObjectNode root = om.createObjectNode();
    root.put("version", "1.0");
    root.putNull("truncation");
    root.putNull("padding");
    ArrayNode added = root.putArray("added_tokens");
    for (int i = 0; i < 5; i++) {
      ObjectNode t = added.addObject();
      t.put("id", i);
      t.put("content", vocab.get(i));
      t.put("single_word", false);
      t.put("lstrip", false);
      t.put("rstrip", false);
      t.put("normalized", false);
      t.put("special", true);
    }
    ObjectNode norm = root.putObject("normalizer");
    norm.put("type", "BertNormalizer");
    norm.put("clean_text", true);
    norm.put("handle_chinese_chars", true);
    norm.putNull("strip_accents");
    norm.put("lowercase", true);
    root.putObject("pre_tokenizer").put("type", "BertPreTokenizer");
    root.putNull("post_processor");
    ObjectNode dec = root.putObject("decoder");
    dec.put("type", "WordPiece");
    dec.put("prefix", "##");
    dec.put("cleanup", true);
    ObjectNode model = root.putObject("model");
    model.put("type", "WordPiece");
    model.put("unk_token", "[UNK]");
    model.put("continuing_subword_prefix", "##");
    model.put("max_input_chars_per_word", 100);
    ObjectNode v = model.putObject("vocab");
    for (int i = 0; i < vocab.size(); i++) {
      v.put(vocab.get(i), i);
    }
    Files.writeString(file, om.writeValueAsString(root));
  }

  /** A sentence of filler words with one keyword of the class (1 = positive). */
  static String sentence(Random r, int label) {
    int n = 3 + r.nextInt(10);
    StringBuilder sb = new StringBuilder();
    int at = r.nextInt(n);
    for (int i = 0; i < n; i++) {
      if (i > 0) {
        sb.append(' ');
      }
      sb.append(i == at ? (label == 1 ? POS : NEG)[r.nextInt(POS.length)]
          : FILLER[r.nextInt(FILLER.length)]);
    }
    return sb.toString();
  }

  /**
   * Writes a TSV {@code sentence\tlabel} of n rows; {@code label} maps (row's class 0/1, rng)
   * to the label text.
   */
  public static Path tsv(Path file, int n, long seed, BiFunction<Integer, Random, String> label) {
    Random r = new Random(seed);
    StringBuilder sb = new StringBuilder("sentence\tlabel\n");
    for (int i = 0; i < n; i++) {
      int y = r.nextInt(2);
      sb.append(sentence(r, y)).append('\t').append(label.apply(y, r)).append('\n');
    }
    return write(file, sb.toString());
  }

  /** A binary task with labels 0/1. */
  public static Path binary(Path file, int n, long seed) {
    return tsv(file, n, seed, (y, r) -> Integer.toString(y));
  }

  public static Path write(Path file, String text) {
    try {
      Files.createDirectories(file.toAbsolutePath().getParent());
      Files.writeString(file, text, StandardCharsets.UTF_8);
      return file;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** A trainer builder on the tiny task with fast settings (no output, silent). */
  public static Trainer.Builder builder(Path model, Path train, Backend be) {
    return Trainer.builder().setModel(model).setTrainData(train).optBackend(be)
        .optBatchSize(16).optLearningRate(1e-3).optEpochs(2).optWarmupRatio(0.1)
        .optListener(TrainingListener.silent());
  }

  /** Parameter values by name, from a model.safetensors. */
  public static Map<String, float[]> readModel(Path file) {
    Map<String, float[]> m = new LinkedHashMap<>();
    try (SafetensorsReader r = SafetensorsReader.open(file)) {
      for (String k : r.names()) {
        m.put(k, r.readFloats(k));
      }
    }
    return m;
  }
}
