package org.bertj.train;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.bertj.io.BertConfig.ProblemType;
import org.bertj.io.BertTokenizer;
import org.bertj.io.Dataset;
import org.bertj.io.DatasetException;
import org.bertj.io.Encoding;
import org.bertj.io.EncodingBatch;
import org.bertj.model.Batch;

/**
 * A data file tokenized for the model: one {@link Encoding} per row (truncated to the maximum
 * length; how many were cut is {@link #truncated()}), and the targets when the file has labels.
 */
public final class Examples {
  private final Path file;
  private final List<Encoding> encodings;
  private final int[] lengths;
  private final int[] lines;
  private final LabelSpace labels;
  private final int[] ids; // single-label
  private final float[] targets; // multi-label / regression, (n, numLabels)
  private final int truncated;
  private final int padId;

  private Examples(Path file, List<Encoding> encodings, int[] lines, LabelSpace labels, int[] ids,
      float[] targets, int truncated, int padId) {
    this.file = file;
    this.encodings = encodings;
    this.lines = lines;
    this.labels = labels;
    this.ids = ids;
    this.targets = targets;
    this.truncated = truncated;
    this.padId = padId;
    this.lengths = new int[encodings.size()];
    for (int i = 0; i < lengths.length; i++) {
      lengths[i] = encodings.get(i).length();
    }
  }

  /**
   * Reads a data file (missing, empty or malformed files are a {@link DatasetException} naming
   * the file and line).
   */
  public static Dataset read(Path file) {
    if (!Files.isRegularFile(file)) {
      throw new DatasetException(file, 0, Files.exists(file) ? "not a regular file"
          : "no such file");
    }
    Dataset ds = Dataset.read(file);
    if (ds.size() == 0) {
      throw new DatasetException(file, 0, "no data rows (only a header)");
    }
    return ds;
  }

  /** The first {@code limit} rows' 1-based lines ({@code limit < 0}: all). */
  static int[] lines(Dataset ds, int limit) {
    int n = limit < 0 ? ds.size() : Math.min(limit, ds.size());
    int[] l = new int[n];
    for (int i = 0; i < n; i++) {
      l[i] = ds.lineOf(i);
    }
    return l;
  }

  /** The label column of the first {@code limit} rows. */
  static List<String> rawLabels(Dataset ds, TextColumns cols, int limit) {
    List<String> all = ds.column(cols.label());
    return limit < 0 || limit >= all.size() ? all : all.subList(0, limit);
  }

  /**
   * Tokenizes a dataset.
   *
   * @param ds the rows
   * @param cols the columns
   * @param tok the tokenizer
   * @param maxLength most tokens per example, special tokens included
   * @param labels the label space to map the label column with, or null to read no labels
   * @param limit use the first {@code limit} rows only ({@code < 0}: all)
   */
  public static Examples encode(Dataset ds, TextColumns cols, BertTokenizer tok, int maxLength,
      LabelSpace labels, int limit) {
    Path file = ds.file();
    int n = limit < 0 ? ds.size() : Math.min(limit, ds.size());
    String textCol = cols.text() != null ? cols.text() : ds.defaultTextColumn();
    List<String> texts = ds.column(textCol).subList(0, n);
    List<String> pairs = cols.pair() == null ? null : ds.column(cols.pair()).subList(0, n);
    int[] lines = lines(ds, n);
    for (int i = 0; i < n; i++) {
      if (texts.get(i) == null) {
        throw new DatasetException(file, lines[i], "column '" + textCol + "' is null");
      }
      if (pairs != null && pairs.get(i) == null) {
        throw new DatasetException(file, lines[i], "column '" + cols.pair() + "' is null");
      }
    }
    // Encode without a limit to count what the maximum length cuts, then cut those rows.
    List<Encoding> enc = new ArrayList<>(tok.encodeAll(texts, pairs, Integer.MAX_VALUE));
    int cut = 0;
    for (int i = 0; i < n; i++) {
      if (enc.get(i).length() > maxLength) {
        enc.set(i, tok.encode(texts.get(i), pairs == null ? null : pairs.get(i), maxLength));
        cut++;
      }
    }
    int[] ids = null;
    float[] targets = null;
    if (labels != null) {
      List<String> raw = ds.column(cols.label());
      if (labels.problemType() == ProblemType.SINGLE_LABEL_CLASSIFICATION) {
        ids = new int[n];
        for (int i = 0; i < n; i++) {
          ids[i] = labels.id(raw.get(i), file, lines[i]);
        }
      } else {
        targets = new float[n * labels.size()];
        for (int i = 0; i < n; i++) {
          labels.targets(raw.get(i), file, lines[i], targets, i * labels.size());
        }
      }
    }
    return new Examples(file, enc, lines, labels, ids, targets, cut, tok.getPadId());
  }

  public Path file() {
    return file;
  }

  public int size() {
    return encodings.size();
  }

  /** Token count of each example (special tokens included). */
  public int[] lengths() {
    return lengths;
  }

  public Encoding encoding(int row) {
    return encodings.get(row);
  }

  /** The 1-based file line of a row. */
  public int line(int row) {
    return lines[row];
  }

  /** Examples longer than the maximum length, which were truncated. */
  public int truncated() {
    return truncated;
  }

  public boolean hasLabels() {
    return labels != null;
  }

  public LabelSpace labels() {
    return labels;
  }

  /** Single-label ids (null otherwise). */
  public int[] labelIds() {
    return ids;
  }

  /** Multi-label / regression targets (n, numLabels) (null otherwise). */
  public float[] targets() {
    return targets;
  }

  /** The model batch of these rows, padded to the longest, with labels when present. */
  public Batch batch(int[] rows) {
    List<Encoding> sel = new ArrayList<>(rows.length);
    for (int r : rows) {
      sel.add(encodings.get(r));
    }
    EncodingBatch eb = EncodingBatch.pad(sel, padId, 1);
    Batch b = Batch.of(eb.inputIds(), eb.tokenTypeIds(), eb.attentionMask(), eb.batchSize(),
        eb.seqLen());
    if (ids != null) {
      int[] y = new int[rows.length];
      for (int i = 0; i < rows.length; i++) {
        y[i] = ids[rows[i]];
      }
      return b.withLabels(y);
    }
    if (targets != null) {
      int l = labels.size();
      float[] y = new float[rows.length * l];
      for (int i = 0; i < rows.length; i++) {
        System.arraycopy(targets, rows[i] * l, y, i * l, l);
      }
      return b.withFloatLabels(y);
    }
    return b;
  }
}
