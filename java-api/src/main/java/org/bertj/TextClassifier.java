package org.bertj;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import org.bertj.backend.Backend;
import org.bertj.backend.Device;
import org.bertj.backend.Precision;
import org.bertj.io.BertConfig;
import org.bertj.io.BertTokenizer;
import org.bertj.io.CheckpointException;
import org.bertj.io.EncodingBatch;
import org.bertj.io.SafetensorsReader;
import org.bertj.model.Batch;
import org.bertj.model.BertForSequenceClassification;

/**
 * Predictions of a fine-tuned {@code BertForSequenceClassification} folder (as {@code bertj
 * finetune} or transformers' {@code save_pretrained} write it): label and probabilities per text,
 * or per text pair.
 *
 * <pre>{@code
 * try (TextClassifier clf = TextClassifier.load(Path.of("runs/sst2/best"))) {
 *     Prediction p = clf.predict("a gripping, funny film");
 *     System.out.println(p.label() + " " + p.probability(p.label()));
 * }
 * }</pre>
 *
 * <p>The problem type of {@code config.json} decides what the probabilities are (softmax,
 * sigmoid, or none for a regression): see {@link Prediction}. Texts are truncated to
 * {@link #maxLength()} tokens (pairs longest-first) and batched by length; results come back in
 * input order. Holds native memory: close it. Methods are synchronized.
 */
public final class TextClassifier implements AutoCloseable {
  private final Path modelDir;
  private final Backend backend;
  private final BertTokenizer tokenizer;
  private final BertForSequenceClassification model;
  private final BertConfig.ProblemType problemType;
  private final int maxLength;
  private final LengthBatcher batcher;
  private boolean closed;

  private TextClassifier(Builder b) {
    modelDir = Objects.requireNonNull(b.model, "setModel is required");
    BertConfig config = BertConfig.forModel(modelDir);
    maxLength = b.maxLength > 0 ? b.maxLength : config.getMaxPositionEmbeddings();
    if (maxLength < 3 || maxLength > config.getMaxPositionEmbeddings()) {
      throw new IllegalArgumentException("max length " + maxLength + " must be in [3, "
          + config.getMaxPositionEmbeddings() + "] (max_position_embeddings of "
          + modelDir.resolve("config.json") + ")");
    }
    Path weights = modelDir.resolve("model.safetensors");
    try (SafetensorsReader r = SafetensorsReader.open(weights)) {
      if (!r.contains("classifier.weight")) {
        throw new CheckpointException(weights, "tensor 'classifier.weight'",
            "missing: not a fine-tuned BertForSequenceClassification checkpoint");
      }
    }
    problemType = config.getEffectiveProblemType();
    BertTokenizer tok = null;
    Backend be = null;
    try {
      tok = BertTokenizer.forModel(modelDir);
      be = Backend.create(b.device);
      model = BertForSequenceClassification.fromPretrained(be, modelDir, config, 0L);
      model.parameters().setPrecision(Precision.parse(b.precision, be.device()));
    } catch (RuntimeException | Error e) {
      if (be != null) {
        be.close();
      }
      if (tok != null) {
        tok.close();
      }
      throw e;
    }
    tokenizer = tok;
    backend = be;
    batcher = new LengthBatcher(tokenizer, maxLength, b.batchSize);
  }

  /**
   * Loads a fine-tuned folder with the default settings (device AUTO).
   *
   * @param modelDir the folder ({@code config.json}, {@code model.safetensors},
   *     {@code tokenizer.json})
   * @return the classifier; close it
   * @throws CheckpointException naming the file and tensor or field when the folder is broken or
   *     has no classifier weights
   */
  public static TextClassifier load(Path modelDir) {
    return builder().setModel(modelDir).build();
  }

  /** @return a builder: {@code setModel} is required */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * @param text a text
   * @return its prediction
   */
  public Prediction predict(String text) {
    return predict(List.of(text)).get(0);
  }

  /**
   * @param texts the texts, none null
   * @return one prediction per text, in input order
   */
  public List<Prediction> predict(List<String> texts) {
    return predict(texts, null);
  }

  /**
   * Predicts for sentence pairs ({@code [CLS] a [SEP] b [SEP]}), as the model was fine-tuned on
   * pairs (MRPC, QNLI...).
   *
   * @param texts the first segments
   * @param pairs the second segments, as many as {@code texts}, or null for single texts
   * @return one prediction per text, in input order
   */
  public synchronized List<Prediction> predict(List<String> texts, List<String> pairs) {
    checkOpen();
    List<LengthBatcher.Chunk> chunks = batcher.plan(texts, pairs);
    float[][] logits = LengthBatcher.run(chunks, texts.size(), c -> logits(c.batch()), null);
    List<String> labels = model.config().getLabels();
    Prediction[] out = new Prediction[logits.length];
    for (int i = 0; i < logits.length; i++) {
      out[i] = toPrediction(logits[i], labels);
    }
    return List.of(out);
  }

  /** The batches {@link #predict} would run (for tests). */
  synchronized List<LengthBatcher.Chunk> plan(List<String> texts, List<String> pairs) {
    checkOpen();
    return batcher.plan(texts, pairs);
  }

  /**
   * Runs the model on a batch.
   *
   * @param batch a tokenized batch
   * @return the logits, {@code B} rows of num_labels
   */
  public synchronized float[][] logits(EncodingBatch batch) {
    checkOpen();
    model.forward(Batch.of(batch.inputIds(), batch.tokenTypeIds(), batch.attentionMask(),
        batch.batchSize(), batch.seqLen()));
    float[] flat = model.logitsArray();
    int l = model.config().getNumLabels();
    float[][] out = new float[batch.batchSize()][l];
    for (int i = 0; i < out.length; i++) {
      System.arraycopy(flat, i * l, out[i], 0, l);
    }
    return out;
  }

  private Prediction toPrediction(float[] z, List<String> labels) {
    if (problemType == BertConfig.ProblemType.REGRESSION) {
      return new Prediction(-1, null, null, z, labels);
    }
    float[] p = new float[z.length];
    if (problemType == BertConfig.ProblemType.MULTI_LABEL_CLASSIFICATION) {
      for (int k = 0; k < z.length; k++) {
        p[k] = (float) (1.0 / (1.0 + Math.exp(-z[k])));
      }
    } else {
      double max = Double.NEGATIVE_INFINITY;
      for (float v : z) {
        max = Math.max(max, v);
      }
      double sum = 0;
      double[] e = new double[z.length];
      for (int k = 0; k < z.length; k++) {
        e[k] = Math.exp(z[k] - max);
        sum += e[k];
      }
      for (int k = 0; k < z.length; k++) {
        p[k] = (float) (e[k] / sum);
      }
    }
    int best = 0;
    for (int k = 1; k < p.length; k++) {
      if (p[k] > p[best]) {
        best = k;
      }
    }
    return new Prediction(best, labels.get(best), p, z, labels);
  }

  /** @return the label names in id order ({@code id2label}) */
  public List<String> labels() {
    return model.config().getLabels();
  }

  /** @return the problem type that decides what the probabilities are */
  public BertConfig.ProblemType problemType() {
    return problemType;
  }

  /** @return the model's configuration */
  public BertConfig config() {
    return model.config();
  }

  /** @return the checkpoint folder */
  public Path modelDir() {
    return modelDir;
  }

  /** @return where the model runs ({@code CPU} or {@code CUDA}) */
  public Device device() {
    return backend.device();
  }

  /** The backend (for tests: native memory accounting). */
  Backend backend() {
    return backend;
  }

  /** @return the most tokens per example, special tokens included */
  public int maxLength() {
    return maxLength;
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("the classifier is closed");
    }
  }

  /** Frees the model's native memory, the backend and the tokenizer. Idempotent. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      model.close();
    } finally {
      try {
        backend.close();
      } finally {
        tokenizer.close();
      }
    }
  }

  /** Settings of a {@link TextClassifier}: {@code setModel} is required. */
  public static final class Builder {
    private Path model;
    private Device device = Device.AUTO;
    private String precision = "auto";
    private int maxLength;
    private int batchSize = 32;

    private Builder() {}

    /**
     * @param dir the fine-tuned folder
     * @return this
     */
    public Builder setModel(Path dir) {
      this.model = Objects.requireNonNull(dir, "model");
      return this;
    }

    /**
     * @param d {@code AUTO} (default), {@code CPU} or {@code CUDA}
     * @return this
     */
    public Builder optDevice(Device d) {
      this.device = Objects.requireNonNull(d, "device");
      return this;
    }

    /**
     * @param p "auto" (default: bf16 GEMM inputs with fp32 accumulation on CUDA, fp32 on the CPU),
     *     "fp32" or "bf16"
     * @return this
     */
    public Builder optPrecision(String p) {
      Precision.parse(Objects.requireNonNull(p, "precision"), Device.CPU);
      this.precision = p;
      return this;
    }

    /**
     * @param n the most tokens per example, special tokens included (default
     *     max_position_embeddings)
     * @return this
     */
    public Builder optMaxLength(int n) {
      if (n < 3) {
        throw new IllegalArgumentException("max length must be at least 3, got " + n);
      }
      this.maxLength = n;
      return this;
    }

    /**
     * @param n the most examples per forward (default 32)
     * @return this
     */
    public Builder optBatchSize(int n) {
      if (n < 1) {
        throw new IllegalArgumentException("batch size must be at least 1, got " + n);
      }
      this.batchSize = n;
      return this;
    }

    /**
     * Loads the tokenizer and the model.
     *
     * @return the classifier; close it
     */
    public TextClassifier build() {
      return new TextClassifier(this);
    }
  }
}
