package org.bertj.model;

import org.bertj.io.BertConfig;
import java.nio.file.Path;
import java.util.List;
import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.GraphCache;
import org.bertj.backend.Tensor;

/**
 * Hugging Face {@code BertForSequenceClassification}: {@link BertModel} (parameters
 * {@code bert.*}), dropout (classifier_dropout, else hidden_dropout_prob) on the pooled output,
 * then {@code classifier} (num_labels, C). The loss follows the problem type: single-label
 * cross-entropy (mean over labels >= 0), multi-label BCE with logits (mean over all elements),
 * regression MSE (mean over all elements); with problem_type null, transformers' rule decides.
 *
 * <p>All parameters live in one {@link Parameters} store (decayed first), so one AdamW call
 * updates the model. Usage per step: {@code parameters().zeroGrad(); forward(batch, true, seed);
 * backward(); optimizer step}. Not thread-safe.
 */
public final class BertForSequenceClassification implements AutoCloseable {
  private final Backend be;
  private final BertConfig config;
  private final Parameters params;
  private final BertModel bert;
  private final Linear classifier;

  private final Arena head;
  private final Arena headInts;
  private int headB = -1;
  private Tensor pooledDrop;
  private Tensor logits;
  private Tensor dlogits;
  private Tensor losses;
  private Tensor targets;
  private Tensor dpooled;
  private Tensor labels;

  private int b;
  private float dropP;
  private long dropOffset;
  private BertConfig.ProblemType lastProblem;
  private BertConfig.ProblemType stagedProblem;
  private boolean staged;
  private int lossCount;
  private boolean haveLoss;
  private boolean forwardDone;
  private boolean closed;

  private BertForSequenceClassification(Parameters ps, BertConfig c) {
    this.be = ps.backend();
    this.config = c;
    this.params = ps;
    this.bert = new BertModel(ps, "bert", c, true, false);
    this.classifier = new Linear(ps, "classifier", c.getHiddenSize(), c.getNumLabels());
    this.head = new Arena(be, DType.F32);
    this.headInts = new Arena(be, DType.I32);
  }

  /** The parameter layout: {@code bert.*} then {@code classifier.*}, decayed tensors first. */
  public static Parameters.Layout layout(BertConfig c) {
    Parameters.Layout l = new Parameters.Layout();
    BertModel.declare(l, "bert", c, true);
    Linear.declare(l, "classifier", c.getHiddenSize(), c.getNumLabels());
    return l;
  }

  /** A fresh model with transformers' initialisation, seeded. */
  public static BertForSequenceClassification create(Backend be, BertConfig c, long seed) {
    Parameters ps = Parameters.allocate(be, layout(c));
    try {
      Checkpoints.initialize(ps, c, seed, n -> true);
      return new BertForSequenceClassification(ps, c);
    } catch (RuntimeException | Error e) {
      ps.close();
      throw e;
    }
  }

  /** {@link #fromPretrained(Backend, Path, BertConfig, long)} with the folder's config.json. */
  public static BertForSequenceClassification fromPretrained(Backend be, Path dir, long seed) {
    return fromPretrained(be, dir, BertConfig.read(dir.resolve("config.json")), seed);
  }

  /**
   * Loads {@code model.safetensors} of a Hugging Face folder (keys with or without the
   * {@code bert.} prefix). Missing pooler or classifier tensors are initialised as transformers
   * does (normal(0, initializer_range) from {@code seed}, zero bias) and listed once on stderr; a
   * missing encoder tensor or a shape that disagrees with the config throws
   * {@link org.bertj.io.CheckpointException} naming the file and tensor, and nothing stays
   * allocated.
   *
   * @param config the configuration to build (e.g. the folder's with another num_labels)
   */
  public static BertForSequenceClassification fromPretrained(Backend be, Path dir,
      BertConfig config, long seed) {
    Parameters ps = Parameters.allocate(be, layout(config));
    try {
      Checkpoints.load(ps, dir.resolve("model.safetensors"), config, seed,
          n -> n.startsWith("bert.pooler.") || n.startsWith("classifier."));
      return new BertForSequenceClassification(ps, config);
    } catch (RuntimeException | Error e) {
      ps.close();
      throw e;
    }
  }

  /** Writes {@code model.safetensors} (transformers keys, F32) and {@code config.json}. */
  public void save(Path dir) {
    checkOpen();
    Checkpoints.save(params, dir, config);
  }

  public BertConfig config() {
    return config;
  }

  public Parameters parameters() {
    return params;
  }

  public BertModel bert() {
    return bert;
  }

  public Backend backend() {
    return be;
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("model is closed");
    }
  }

  private void ensureHead(int nb) {
    if (nb == headB) {
      return;
    }
    int c = config.getHiddenSize();
    int l = config.getNumLabels();
    Tensor[] h = head.layout(() -> new Tensor[] {head.take(nb, c), head.take(nb, l),
        head.take(nb, l), head.take((long) nb * l), head.take((long) nb * l), head.take(nb, c)});
    pooledDrop = h[0];
    logits = h[1];
    dlogits = h[2];
    losses = h[3];
    targets = h[4];
    dpooled = h[5];
    labels = headInts.layout(() -> headInts.take(nb));
    headB = nb;
  }

  /**
   * The loss a batch gets: config.json's problem_type, else transformers' rule: num_labels 1 is
   * regression; more labels are single-label classification for integer labels and multi-label
   * classification for float labels.
   */
  public BertConfig.ProblemType problemType(Batch batch) {
    if (config.getProblemType() != null) {
      return config.getProblemType();
    }
    if (config.getNumLabels() == 1) {
      return BertConfig.ProblemType.REGRESSION;
    }
    return batch.labels() != null ? BertConfig.ProblemType.SINGLE_LABEL_CLASSIFICATION
        : BertConfig.ProblemType.MULTI_LABEL_CLASSIFICATION;
  }

  /** Checks the labels against the problem type; returns the float targets when it uses them. */
  private float[] checkLabels(Batch batch, BertConfig.ProblemType pt) {
    int nb = batch.batchSize();
    int l = config.getNumLabels();
    switch (pt) {
      case SINGLE_LABEL_CLASSIFICATION -> {
        int[] y = batch.labels();
        if (y == null) {
          throw new IllegalArgumentException(
              "single-label classification needs integer labels (B)");
        }
        for (int i = 0; i < y.length; i++) {
          if (y[i] >= l) {
            throw new IllegalArgumentException("label " + y[i] + " at batch row " + i
                + " is not below num_labels " + l);
          }
        }
        return null;
      }
      case MULTI_LABEL_CLASSIFICATION -> {
        float[] y = batch.floatLabels();
        if (y == null || y.length != nb * l) {
          throw new IllegalArgumentException("multi-label classification needs float labels of "
              + "B*num_labels = " + nb * l + " entries");
        }
        return y;
      }
      default -> {
        if (batch.labels() != null && l == 1) {
          float[] y = new float[nb];
          for (int i = 0; i < nb; i++) {
            y[i] = batch.labels()[i];
          }
          return y;
        }
        float[] y = batch.floatLabels();
        if (y == null || y.length != nb * l) {
          throw new IllegalArgumentException("regression needs float labels of B*num_labels = "
              + nb * l + " entries");
        }
        return y;
      }
    }
  }

  /**
   * Runs the model: logits (B, num_labels), and, when the batch has labels, the loss and its
   * logits gradient. Training switches dropout on with the step's seed. Labels and token ids are
   * checked before any native code runs. The same as {@link #stage} then {@link #compute}; not
   * training, with inference graphs on ({@link #useInferenceGraphs}), the ops of a batch shape
   * seen before are replayed from a graph.
   */
  public void forward(Batch batch, boolean training, long seed) {
    stage(batch, training, seed);
    if (training) {
      compute();
    } else {
      bert.inferenceGraphs().run(List.of(stageKey(), params.isLowFresh()), this::compute);
    }
  }

  /**
   * The host half of {@link #forward}: checks the batch and its labels, lays out the workspaces
   * and uploads the inputs and labels. {@link #compute} then only queues ops, so that it can be
   * captured into a graph and replayed for later batches of the same {@link #stageKey}.
   */
  public void stage(Batch batch, boolean training, long seed) {
    stage(batch, training, seed, true);
  }

  private void stage(Batch batch, boolean training, long seed, boolean grad) {
    checkOpen();
    forwardDone = false;
    haveLoss = false;
    staged = false;
    BertConfig.ProblemType pt = batch.hasLabels() ? problemType(batch) : null;
    float[] floatTargets = pt == null ? null : checkLabels(batch, pt);
    bert.stage(batch, training, seed, grad);
    b = batch.batchSize();
    ensureHead(b);
    dropP = bert.rng().p(config.getEffectiveClassifierDropout());
    stagedProblem = pt;
    if (pt != null) {
      int l = config.getNumLabels();
      switch (pt) {
        case SINGLE_LABEL_CLASSIFICATION -> {
          int count = 0;
          for (int y : batch.labels()) {
            count += y >= 0 ? 1 : 0;
          }
          lossCount = count;
          be.upload(labels, batch.labels());
        }
        case MULTI_LABEL_CLASSIFICATION -> {
          lossCount = b * l;
          be.upload(targets, floatTargets);
        }
        default -> {
          lossCount = b * l;
          be.upload(targets, floatTargets);
        }
      }
      lastProblem = pt;
      haveLoss = true;
    }
    staged = true;
    // The outputs (logits, losses) are the workspace views that compute's ops write: from here on
    // they are this batch's, as soon as those ops have run (compute, or a graph replay of it).
    forwardDone = true;
  }

  /**
   * The device half of {@link #forward}, after {@link #stage}: queues the encoder, the head and
   * the loss (no allocation, no host copy, no Java state but the dropout offsets, which are the
   * same every time for the same stage).
   */
  public void compute() {
    checkOpen();
    if (!staged) {
      throw new IllegalStateException("compute needs a stage first");
    }
    bert.compute();
    DropoutRng rng = bert.rng();
    Tensor pooled = bert.pooledOutput();
    Tensor x = pooled;
    if (dropP > 0f) {
      dropOffset = rng.take((long) b * config.getHiddenSize());
      be.dropoutForward(pooledDrop, pooled, dropP, rng.seed(), dropOffset);
      x = pooledDrop;
    }
    classifier.forward(logits, x, b);
    BertConfig.ProblemType pt = stagedProblem;
    if (pt != null) {
      int l = config.getNumLabels();
      switch (pt) {
        case SINGLE_LABEL_CLASSIFICATION -> be.crossEntropy(losses.view(0, b), dlogits, logits,
            labels, b, l, lossCount == 0 ? 0f : 1f / lossCount);
        case MULTI_LABEL_CLASSIFICATION -> be.bceWithLogits(losses, dlogits, logits, targets,
            1f / lossCount);
        default -> be.mse(losses, dlogits, logits, targets, 1f / lossCount);
      }
    }
  }

  /**
   * What {@link #compute} and {@link #backward} of the staged batch depend on besides the data
   * in the staged tensors (for graph caches): the encoder's key, the loss kind, and the single
   * label loss's count of labels that count (its scale is an argument).
   */
  public Object stageKey() {
    if (!staged) {
      throw new IllegalStateException("no stage has run");
    }
    return List.of(bert.stageKey(), String.valueOf(stagedProblem),
        stagedProblem == null ? 0 : lossCount, dropP);
  }

  /** Inference forward: logits only (no loss; see {@link #forwardInference}). */
  public void forward(Batch batch) {
    forwardInference(Batch.of(batch.inputIds(), batch.tokenTypeIds(), batch.attentionMask(),
        batch.batchSize(), batch.seqLen()));
  }

  /**
   * Inference forward: no dropout, logits, and the loss when the batch has labels; nothing is kept
   * for a backward (the ops skip the outputs only the backward reads; {@link #backward} throws).
   * With inference graphs on ({@link #useInferenceGraphs}), the ops of a batch shape seen before
   * are replayed from a graph.
   */
  public void forwardInference(Batch batch) {
    stage(batch, false, 0L, !BertModel.LEAN_INFERENCE);
    bert.inferenceGraphs().run(List.of(stageKey(), params.isLowFresh()), this::compute);
  }

  /**
   * Whether a forward that is not training captures its ops into a graph per batch shape and
   * replays them ({@link GraphCache}; the encoder's cache, shared with its own inference
   * forwards); default: the system property bertj.graphs (false). Returns the cache.
   */
  public GraphCache useInferenceGraphs(boolean on) {
    checkOpen();
    return bert.useInferenceGraphs(on);
  }

  /** (B, num_labels) logits of the last forward (a workspace view). */
  public Tensor logits() {
    checkOpen();
    if (!forwardDone) {
      throw new IllegalStateException("no forward has run");
    }
    return logits;
  }

  /** The logits of the last forward, copied to the host (B*num_labels, row-major). */
  public float[] logitsArray() {
    return be.download(logits());
  }

  /** The problem type of the last forward's loss, or null when it had no labels. */
  public BertConfig.ProblemType lastProblemType() {
    return haveLoss ? lastProblem : null;
  }

  /**
   * The mean loss of the last forward (copied from the device; NaN when every label was
   * ignored, as torch gives).
   */
  public double loss() {
    checkOpen();
    if (!haveLoss) {
      throw new IllegalStateException("the last forward had no labels");
    }
    if (lossCount == 0) {
      return Double.NaN;
    }
    float[] v = be.download(lastProblem == BertConfig.ProblemType.SINGLE_LABEL_CLASSIFICATION
        ? losses.view(0, b) : losses);
    double s = 0;
    for (float x : v) {
      s += x;
    }
    return s / lossCount;
  }

  /**
   * The per-element losses of the last forward, still on the device (a workspace view, valid
   * until the next forward): their sum divided by {@link #lossCount()} is {@link #loss()}. Lets a
   * training loop keep the losses on the device and read many steps at once.
   */
  public Tensor lossElements() {
    checkOpen();
    if (!haveLoss) {
      throw new IllegalStateException("the last forward had no labels");
    }
    return lastProblem == BertConfig.ProblemType.SINGLE_LABEL_CLASSIFICATION
        ? losses.view(0, b) : losses;
  }

  /** How many loss elements count in the mean (labels not ignored); 0 gives a NaN loss. */
  public int lossCount() {
    checkOpen();
    if (!haveLoss) {
      throw new IllegalStateException("the last forward had no labels");
    }
    return lossCount;
  }

  /** Accumulates ("+=") the gradient of the last forward's loss into every parameter gradient. */
  public void backward() {
    checkOpen();
    if (!haveLoss) {
      throw new IllegalStateException("backward needs a forward with labels");
    }
    if (!bert.rng().savesForBackward()) {
      throw new IllegalStateException("the last forward was an inference forward, which keeps "
          + "nothing for a backward: use forward(batch, training, seed)");
    }
    Tensor x = dropP > 0f ? pooledDrop : bert.pooledOutput();
    classifier.backward(dpooled, dlogits, x, b, false);
    if (dropP > 0f) {
      be.dropoutBackward(dpooled, dpooled, dropP, bert.rng().seed(), dropOffset);
    }
    bert.backward(null, dpooled);
  }

  /** Frees the workspace and the parameters. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      head.close();
      headInts.close();
      bert.close();
    } finally {
      params.close();
    }
  }
}
