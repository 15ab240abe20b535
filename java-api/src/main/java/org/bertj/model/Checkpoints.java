package org.bertj.model;

import org.bertj.io.BertConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.function.Predicate;
import org.bertj.io.CheckpointException;
import org.bertj.io.SafetensorsReader;
import org.bertj.io.SafetensorsWriter;

/** Initialisation, loading and saving of a {@link Parameters} store in transformers' format. */
final class Checkpoints {
  private Checkpoints() {}

  /**
   * transformers' {@code _init_weights} for the selected parameters, in buffer order: Linear
   * weights and embedding tables normal(0, initializer_range) (the pad_token_id row of the word
   * embeddings zero), biases 0, LayerNorm weights 1.
   */
  static void initialize(Parameters ps, BertConfig c, long seed, Predicate<String> which) {
    Random r = new Random(seed);
    for (Parameter p : ps.list()) {
      if (which.test(p.name())) {
        ps.backend().upload(p.value(), initialValues(p, c, r));
      }
    }
    ps.markValuesChanged();
  }

  private static float[] initialValues(Parameter p, BertConfig c, Random r) {
    float[] v = new float[Math.toIntExact(p.numel())];
    String n = p.name();
    if (n.endsWith("LayerNorm.weight")) {
      Arrays.fill(v, 1f);
    } else if (n.endsWith(".bias")) {
      // zero
    } else {
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) (r.nextGaussian() * c.getInitializerRange());
      }
      if (n.endsWith("word_embeddings.weight") && c.getPadTokenId() >= 0
          && c.getPadTokenId() < c.getVocabSize()) {
        Arrays.fill(v, c.getPadTokenId() * c.getHiddenSize(), (c.getPadTokenId() + 1) * c.getHiddenSize(), 0f);
      }
    }
    return v;
  }

  /** Checkpoint keys tried for a parameter: its name, with or without "bert.", and gamma/beta. */
  static List<String> candidates(String name) {
    Set<String> out = new LinkedHashSet<>();
    out.add(name);
    out.add(name.startsWith("bert.") ? name.substring(5) : "bert." + name);
    for (String k : new ArrayList<>(out)) {
      if (k.endsWith("LayerNorm.weight")) {
        out.add(k.substring(0, k.length() - "weight".length()) + "gamma");
      } else if (k.endsWith("LayerNorm.bias")) {
        out.add(k.substring(0, k.length() - "bias".length()) + "beta");
      }
    }
    return new ArrayList<>(out);
  }

  /**
   * Fills every parameter from a safetensors file. Parameters absent from the file that
   * {@code optional} accepts are initialised as transformers does (seeded) and listed once on
   * stderr; any other absent tensor, or a shape that disagrees with the config, throws a
   * {@link CheckpointException} naming the file and tensor. The caller closes the store on
   * failure, so no half-loaded model escapes.
   *
   * @return the names that were initialised instead of loaded
   */
  static List<String> load(Parameters ps, Path file, BertConfig c, long seed,
      Predicate<String> optional) {
    List<String> initialised = new ArrayList<>();
    try (SafetensorsReader r = SafetensorsReader.open(file)) {
      List<String> missing = new ArrayList<>();
      List<String[]> found = new ArrayList<>();
      for (Parameter p : ps.list()) {
        String key = null;
        for (String k : candidates(p.name())) {
          if (r.contains(k)) {
            key = k;
            break;
          }
        }
        if (key == null) {
          if (optional.test(p.name())) {
            initialised.add(p.name());
          } else {
            missing.add(p.name());
          }
          continue;
        }
        long[] shape = r.shape(key);
        if (!Arrays.equals(shape, p.shape())) {
          throw new CheckpointException(file, "tensor '" + key + "'", "shape "
              + Arrays.toString(shape) + " disagrees with the config, which needs "
              + Arrays.toString(p.shape()));
        }
        found.add(new String[] {p.name(), key});
      }
      if (!missing.isEmpty()) {
        throw new CheckpointException(file, "tensor '" + missing.get(0) + "'",
            "missing" + (missing.size() > 1 ? " (and " + (missing.size() - 1) + " more: "
                + String.join(", ", missing.subList(1, missing.size())) + ")" : ""));
      }
      for (String[] f : found) {
        ps.backend().upload(ps.get(f[0]).value(), r.readFloats(f[1]));
      }
      ps.markValuesChanged();
    }
    if (!initialised.isEmpty()) {
      Set<String> init = Set.copyOf(initialised);
      initialize(ps, c, seed, init::contains);
      System.err.println("bertj: " + file + " lacks " + String.join(", ", initialised)
          + "; initialised them as transformers does (normal(0, " + c.getInitializerRange()
          + "), zero bias)");
    }
    return initialised;
  }

  /** Writes {@code model.safetensors} (F32, the parameter names as keys) and {@code config.json}. */
  static void save(Parameters ps, Path dir, BertConfig c) {
    try {
      Files.createDirectories(dir);
      SafetensorsWriter w = new SafetensorsWriter();
      for (Parameter p : ps.list()) {
        w.putF32(p.name(), ps.backend().download(p.value()), p.shape());
      }
      w.putMetadata("format", "pt");
      w.write(dir.resolve("model.safetensors"));
      c.write(dir.resolve("config.json"));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot save the model to " + dir, e);
    }
  }
}
