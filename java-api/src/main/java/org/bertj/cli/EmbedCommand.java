package org.bertj.cli;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.bertj.Pooling;
import org.bertj.SentenceEncoder;
import org.bertj.backend.Device;
import org.bertj.io.Dataset;
import org.bertj.io.DatasetException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bertj embed}: one sentence embedding per row of a data file, as JSON Lines (one JSON array
 * of floats per row, in input order) to {@code --output} (written atomically) or stdout. Logs and
 * progress go to stderr.
 */
@Command(name = "embed", mixinStandardHelpOptions = true,
    description = {"Sentence embeddings of a text column: one JSON array of floats per row, in "
        + "input order (JSON Lines), to --output or stdout."})
public final class EmbedCommand implements Callable<Integer> {

  /** Rows tokenized, sorted and embedded at a time (output memory stays bounded). */
  static final int WINDOW_BATCHES = 64;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Option(names = "--model", paramLabel = "DIR",
      description = "Hugging Face BERT folder (config.json, model.safetensors, tokenizer.json); "
          + "default: all-MiniLM-L6-v2, converted on first use")
  Path model;

  @Option(names = "--data", required = true, paramLabel = "FILE",
      description = "TSV, CSV, JSONL or JSON file with a header naming the columns")
  Path data;

  @Option(names = "--text-column", paramLabel = "NAME",
      description = "column to embed (default: 'sentence' or 'text', whichever exists)")
  String textColumn;

  @Option(names = "--pooling", paramLabel = "cls|mean", defaultValue = "mean",
      description = "mean of the real tokens' hidden states (default) or the [CLS] one")
  String pooling;

  @Option(names = "--normalize", description = "scale every vector to unit length")
  boolean normalize;

  @Option(names = "--max-len", paramLabel = "N",
      description = "most tokens per text, [CLS] and [SEP] included (default: the model's "
          + "max_position_embeddings)")
  Integer maxLen;

  @Option(names = "--batch-size", paramLabel = "N", defaultValue = "32",
      description = "texts per forward (default: ${DEFAULT-VALUE})")
  int batchSize;

  @Option(names = "--precision", paramLabel = "auto|fp32|bf16", defaultValue = "auto",
      description = "GEMM precision (default: ${DEFAULT-VALUE}: bf16 on CUDA, fp32 on the CPU).")
  String precision;

  @Option(names = "--device", paramLabel = "auto|cpu|cuda", defaultValue = "auto",
      description = "where to run (default: auto = CUDA when a GPU answers, else CPU)")
  String device;

  @Option(names = "--output", paramLabel = "FILE", description = "output file (default: stdout)")
  Path output;

  @Override
  public Integer call() throws IOException {
    PrintWriter err = spec.commandLine().getErr();
    Pooling pool = Pooling.parse(pooling);
    Device dev = Device.parse(device);
    if (batchSize < 1) {
      throw new IllegalArgumentException("--batch-size must be at least 1, got " + batchSize);
    }
    if (maxLen != null && maxLen < 2) {
      throw new IllegalArgumentException("--max-len must be at least 2, got " + maxLen);
    }
    // the data first: a bad file fails before the model is loaded
    Dataset ds = Dataset.read(data);
    String column = textColumn != null ? textColumn : ds.defaultTextColumn();
    List<String> texts = ds.column(column);
    for (int i = 0; i < texts.size(); i++) {
      if (texts.get(i) == null) {
        throw new DatasetException(data, ds.lineOf(i), "column '" + column + "' is null");
      }
    }
    SentenceEncoder.Builder b = SentenceEncoder.builder().optDevice(dev).optPrecision(precision).optPooling(pool)
        .optNormalize(normalize).optBatchSize(batchSize);
    if (model != null) {
      b.optModel(model);
    }
    if (maxLen != null) {
      b.optMaxLength(maxLen);
    }
    long t0 = System.nanoTime();
    try (SentenceEncoder enc = b.build()) {
      err.printf(Locale.ROOT, "bertj embed: %d rows of %s (column '%s'); model %s on %s; "
          + "pooling %s%s; max length %d, batch %d%n", texts.size(), data, column, enc.modelDir(),
          enc.deviceName(), pool, normalize ? ", normalized" : "", enc.maxLength(), batchSize);
      err.flush();
      long t1 = System.nanoTime();
      if (output != null) {
        writeAtomically(output, w -> embedAll(enc, texts, w, err));
      } else {
        Writer w = new BufferedWriter(spec.commandLine().getOut(), 1 << 16);
        embedAll(enc, texts, w, err);
        w.flush();
      }
      double s = (System.nanoTime() - t1) / 1e9;
      err.printf(Locale.ROOT, "bertj embed: %d embeddings of %d floats in %.2f s (%.1f "
          + "sentences/s; %.2f s with loading)%s%n", texts.size(), enc.dimension(), s,
          texts.size() / Math.max(s, 1e-9), (System.nanoTime() - t0) / 1e9,
          output != null ? " -> " + output : "");
      err.flush();
    }
    return 0;
  }

  /** Embeds in windows (sorted by length inside each) and writes each window in input order. */
  private void embedAll(SentenceEncoder enc, List<String> texts, Writer w, PrintWriter err)
      throws IOException {
    int n = texts.size();
    int window = Math.max(1, batchSize * WINDOW_BATCHES);
    long[] lastReport = {System.nanoTime()};
    StringBuilder sb = new StringBuilder(16 * 1024);
    for (int s = 0; s < n; s += window) {
      int e = Math.min(n, s + window);
      int base = s;
      float[][] v = enc.embed(texts.subList(s, e), done -> {
        long now = System.nanoTime();
        if (now - lastReport[0] > 5_000_000_000L) {
          lastReport[0] = now;
          err.printf(Locale.ROOT, "bertj embed: %d/%d%n", base + done, n);
          err.flush();
        }
      });
      for (int i = 0; i < v.length; i++) {
        sb.setLength(0);
        sb.append('[');
        for (int k = 0; k < v[i].length; k++) {
          float x = v[i][k];
          if (!Float.isFinite(x)) {
            throw new IllegalStateException("the embedding of row " + (s + i + 1) + " has a "
                + "non-finite value (" + x + "): the model's weights may be corrupt");
          }
          if (k > 0) {
            sb.append(',');
          }
          sb.append(x);
        }
        sb.append("]\n");
        w.append(sb);
      }
    }
  }

  private interface Body {
    void write(Writer w) throws IOException;
  }

  /** Writes {@code <target>.tmp} and renames it over the target; no half-written output. */
  private static void writeAtomically(Path target, Body body) {
    Path abs = target.toAbsolutePath();
    Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp");
    try {
      if (abs.getParent() != null) {
        Files.createDirectories(abs.getParent());
      }
      try (Writer w = new BufferedWriter(new OutputStreamWriter(Files.newOutputStream(tmp),
          StandardCharsets.UTF_8), 1 << 16)) {
        body.write(w);
      }
      try {
        Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } catch (AtomicMoveNotSupportedException e) {
        Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
      }
    } catch (IOException e) {
      deleteQuietly(tmp);
      throw new UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
    } catch (RuntimeException | Error e) {
      deleteQuietly(tmp);
      throw e;
    }
  }

  private static void deleteQuietly(Path p) {
    try {
      Files.deleteIfExists(p);
    } catch (IOException ignored) {
      // best effort
    }
  }
}
