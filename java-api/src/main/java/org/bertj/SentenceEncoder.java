package org.bertj;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.function.IntConsumer;
import org.bertj.backend.Backend;
import org.bertj.backend.Device;
import org.bertj.backend.Precision;
import org.bertj.io.BertConfig;
import org.bertj.io.BertTokenizer;
import org.bertj.io.EncodingBatch;
import org.bertj.io.MiniLmConverter;
import org.bertj.model.Batch;
import org.bertj.model.BertModel;

/**
 * Sentence embeddings from a BERT checkpoint folder: tokenize, run {@link BertModel}, pool the
 * last hidden state ({@link Pooling#MEAN} by default), optionally normalize to unit length.
 *
 * <pre>{@code
 * try (SentenceEncoder enc = SentenceEncoder.builder()
 *         .optModel(Path.of("weights/all-MiniLM-L6-v2"))   // default: the converted MiniLM
 *         .optDevice(Device.AUTO)                          // CUDA when a GPU answers, else CPU
 *         .optPooling(Pooling.MEAN)
 *         .optNormalize(true)
 *         .build()) {
 *     float[][] v = enc.embed(List.of("a good film", "a bad film"));   // (2, 384)
 * }
 * }</pre>
 *
 * <p>Texts are truncated to {@link #maxLength()} tokens and run in batches of up to
 * {@link #batchSize()} texts of similar length (sorted internally, longest first); results come
 * back in input order, and do not depend on the batching beyond float rounding. An encoder holds
 * native memory (weights and a workspace sized by the largest batch seen): close it. Its methods
 * are synchronized; one encoder runs one batch at a time.
 */
public final class SentenceEncoder implements AutoCloseable {
  private final Path modelDir;
  private final Backend backend;
  private final BertTokenizer tokenizer;
  private final BertModel model;
  private final Pooling pooling;
  private final boolean normalize;
  private final int maxLength;
  private final int batchSize;
  private final LengthBatcher batcher;
  private boolean closed;

  private SentenceEncoder(Builder b) {
    modelDir = b.model != null ? b.model : MiniLmConverter.ensureConverted();
    pooling = b.pooling;
    normalize = b.normalize;
    batchSize = b.batchSize;
    BertConfig config = BertConfig.forModel(modelDir); // fails before any native memory is taken
    maxLength = b.maxLength > 0 ? b.maxLength : config.getMaxPositionEmbeddings();
    if (maxLength < 2 || maxLength > config.getMaxPositionEmbeddings()) {
      throw new IllegalArgumentException("max length " + maxLength + " must be in [2, "
          + config.getMaxPositionEmbeddings() + "] (max_position_embeddings of "
          + modelDir.resolve("config.json") + ")");
    }
    BertTokenizer tok = null;
    Backend be = null;
    try {
      tok = BertTokenizer.forModel(modelDir);
      be = Backend.create(b.device);
      model = BertModel.fromPretrained(be, modelDir, false, 0L);
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
    batcher = new LengthBatcher(tokenizer, maxLength, batchSize);
  }

  /** @return a builder; every setting is optional */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * An encoder with the default settings on a folder.
   *
   * @param modelDir a Hugging Face BERT folder ({@code config.json}, {@code model.safetensors},
   *     {@code tokenizer.json})
   * @return the encoder; close it
   */
  public static SentenceEncoder load(Path modelDir) {
    return builder().optModel(modelDir).build();
  }

  /**
   * Embeds texts.
   *
   * @param texts the texts, none null
   * @return one vector of {@link #dimension()} floats per text, in input order
   */
  public float[][] embed(List<String> texts) {
    return embed(texts, null);
  }

  /**
   * Embeds texts, reporting progress.
   *
   * @param texts the texts, none null
   * @param progress told the number of texts done after each batch (may be null)
   * @return one vector per text, in input order
   */
  public synchronized float[][] embed(List<String> texts, IntConsumer progress) {
    checkOpen();
    List<LengthBatcher.Chunk> chunks = batcher.plan(texts, null);
    return LengthBatcher.run(chunks, texts.size(), c -> pool(c.batch(), lastHiddenState(c.batch())),
        progress);
  }

  /**
   * Embeds one text.
   *
   * @param text the text
   * @return its vector
   */
  public float[] embed(String text) {
    return embed(List.of(text))[0];
  }

  /** The batches {@link #embed} would run, in the order it runs them (for tests). */
  synchronized List<LengthBatcher.Chunk> plan(List<String> texts) {
    checkOpen();
    return batcher.plan(texts, null);
  }

  /**
   * Tokenizes texts into one batch, in input order, truncated to {@link #maxLength()} and padded to
   * the longest.
   *
   * @param texts the texts (at least one)
   * @return the batch
   */
  public synchronized EncodingBatch encode(List<String> texts) {
    checkOpen();
    return tokenizer.encodeBatch(texts, null, maxLength);
  }

  /**
   * Runs the model on a batch.
   *
   * @param batch token ids, token types and attention mask, e.g. from {@link #encode}
   * @return the last hidden state {@code (B, T, C)}, row-major (padded positions included: zero
   *     when the model removed the padding, see {@link org.bertj.model.BertModel}; pooling reads
   *     only the real tokens, by the attention mask)
   */
  public synchronized float[] lastHiddenState(EncodingBatch batch) {
    checkOpen();
    model.forward(Batch.of(batch.inputIds(), batch.tokenTypeIds(), batch.attentionMask(),
        batch.batchSize(), batch.seqLen()));
    return backend.download(model.lastHiddenState());
  }

  /**
   * Pools a last hidden state with this encoder's {@link #pooling()}, and normalizes the vectors
   * when {@link #normalize()}.
   *
   * @param batch the batch the hidden state is of (its attention mask marks the real tokens)
   * @param hidden {@code (B, T, C)} from {@link #lastHiddenState}
   * @return {@code B} vectors of {@code C}
   */
  public float[][] pool(EncodingBatch batch, float[] hidden) {
    int b = batch.batchSize();
    int t = batch.seqLen();
    int c = dimension();
    if (hidden.length != (long) b * t * c) {
      throw new IllegalArgumentException("hidden state has " + hidden.length
          + " floats, expected B*T*C = " + (long) b * t * c);
    }
    int[] mask = batch.attentionMask();
    float[][] out = new float[b][c];
    double[] acc = new double[c];
    for (int i = 0; i < b; i++) {
      float[] v = out[i];
      if (pooling == Pooling.CLS) {
        System.arraycopy(hidden, i * t * c, v, 0, c);
      } else {
        java.util.Arrays.fill(acc, 0);
        int n = 0;
        for (int j = 0; j < t; j++) {
          if (mask[i * t + j] != 0) {
            n++;
            int off = (i * t + j) * c;
            for (int k = 0; k < c; k++) {
              acc[k] += hidden[off + k];
            }
          }
        }
        double inv = 1.0 / Math.max(n, 1);
        for (int k = 0; k < c; k++) {
          v[k] = (float) (acc[k] * inv);
        }
      }
      if (normalize) {
        double ss = 0;
        for (float x : v) {
          ss += (double) x * x;
        }
        // torch.nn.functional.normalize: x / max(||x||, 1e-12)
        double inv = 1.0 / Math.max(Math.sqrt(ss), 1e-12);
        for (int k = 0; k < c; k++) {
          v[k] = (float) (v[k] * inv);
        }
      }
    }
    return out;
  }

  /** @return the length of a vector: the model's hidden size */
  public int dimension() {
    return model.config().getHiddenSize();
  }

  /** @return the model's configuration */
  public BertConfig config() {
    return model.config();
  }

  /** @return the checkpoint folder */
  public Path modelDir() {
    return modelDir;
  }

  /** @return where the model runs ({@code CPU} or {@code CUDA}; never {@code AUTO}) */
  public Device device() {
    return backend.device();
  }

  /** @return the backend's name, e.g. {@code cpu} or {@code cuda:0} */
  public String deviceName() {
    return backend.name();
  }

  /** The backend (for tests: native memory accounting). */
  Backend backend() {
    return backend;
  }

  /** @return the pooling */
  public Pooling pooling() {
    return pooling;
  }

  /** @return whether vectors are scaled to unit length */
  public boolean normalize() {
    return normalize;
  }

  /** @return the most tokens per text, {@code [CLS]} and {@code [SEP]} included */
  public int maxLength() {
    return maxLength;
  }

  /** @return the most texts per forward */
  public int batchSize() {
    return batchSize;
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("the encoder is closed");
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

  /** Settings of a {@link SentenceEncoder}; all optional. */
  public static final class Builder {
    private Path model;
    private Device device = Device.AUTO;
    private String precision = "auto";
    private Pooling pooling = Pooling.MEAN;
    private boolean normalize;
    private int maxLength;
    private int batchSize = 32;

    private Builder() {}

    /**
     * @param dir a Hugging Face BERT folder; default: all-MiniLM-L6-v2, converted on first use
     *     ({@link MiniLmConverter#ensureConverted()})
     * @return this
     */
    public Builder optModel(Path dir) {
      this.model = Objects.requireNonNull(dir, "model");
      return this;
    }

    /**
     * @param d {@code AUTO} (default: CUDA when a device answers, else CPU), {@code CPU} or
     *     {@code CUDA} (an error without a GPU)
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
     * @param p {@link Pooling#MEAN} (default) or {@link Pooling#CLS}
     * @return this
     */
    public Builder optPooling(Pooling p) {
      this.pooling = Objects.requireNonNull(p, "pooling");
      return this;
    }

    /**
     * @param v scale every vector to unit L2 norm (default false)
     * @return this
     */
    public Builder optNormalize(boolean v) {
      this.normalize = v;
      return this;
    }

    /**
     * @param n the most tokens per text, special tokens included, in [2, max_position_embeddings];
     *     default max_position_embeddings
     * @return this
     */
    public Builder optMaxLength(int n) {
      if (n < 2) {
        throw new IllegalArgumentException("max length must be at least 2, got " + n);
      }
      this.maxLength = n;
      return this;
    }

    /**
     * @param n the most texts per forward (default 32)
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
     * @return the encoder; close it
     * @throws org.bertj.io.CheckpointException naming the file and tensor or field when the folder
     *     is broken (nothing stays allocated)
     */
    public SentenceEncoder build() {
      return new SentenceEncoder(this);
    }
  }
}
