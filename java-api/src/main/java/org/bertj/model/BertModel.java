package org.bertj.model;

import org.bertj.io.BertConfig;
import java.nio.file.Path;
import java.util.List;
import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.GraphCache;
import org.bertj.backend.Tensor;

/**
 * Hugging Face {@code BertModel}: {@link BertEmbeddings}, {@link BertEncoder} and, optionally,
 * {@link BertPooler}. For features: {@link #lastHiddenState()} (B, T, C) and
 * {@link #pooledOutput()} (B, C) after {@link #forward}.
 *
 * <p>Activations live in a workspace allocated once per (batch, seq) shape and reused; it grows
 * only when a shape needs more memory than it holds. A forward saves what the backward needs;
 * forward and backward allocate no backend memory for a shape already seen. Not thread-safe.
 *
 * <p>Padding removal: when a batch has an attention mask, every sequence's first token ([CLS])
 * is real and pads are at least 10% of the B*T tokens, the encoder runs every token-wise op
 * (Linear GEMMs, layer norms, GELU, dropout) on the N real tokens only ({@link Packing}): the
 * embeddings run on the padded rows, their output is gathered into N rows, each layer's attention
 * core unpacks qkv to the padded layout and packs its output, and the last layer's output is
 * unpacked into the (B, T, C) {@link #lastHiddenState()}, whose pad rows are then ZERO (in the
 * padded path they hold the pad tokens' hidden states; nothing in bertj reads them). The real
 * rows, the pooler output and every gradient mean the same in both paths (at dropout 0 they agree
 * up to fp32 rounding); with dropout the masks differ, since each dropout draws one Philox
 * element per element of the tensor it acts on (N*C instead of B*T*C). The gradient of the last
 * hidden state at pad rows is ignored in the packed path. System property
 * {@code bertj.pack=false} (read when the model is built) keeps the padded path.
 */
public final class BertModel implements AutoCloseable {
  private final Backend be;
  private final BertConfig config;
  private final Parameters params;
  private final boolean ownsParams;
  private final BertEmbeddings embeddings;
  private final BertEncoder encoder;
  private final BertPooler pooler;

  private final Arena acts;
  private final Arena ints;
  private final Arena grads;
  private final DropoutRng rng = new DropoutRng();
  private GraphCache inferGraphs;
  /** bertj.pack=false (read when the model is built): never remove padding. */
  private final boolean packEnabled = !"false".equalsIgnoreCase(System.getProperty("bertj.pack"));
  /** Padding removal needs pads >= this fraction of B*T (package-private: tests force it). */
  double packMinPadFraction = 0.10;

  // views for the current shape (and real-token count N when packed; -1 when not)
  private int actsB;
  private int actsT;
  private int actsN = -1;
  private int gradsB;
  private int gradsT;
  private int gradsN = -1;
  private int b;
  private int t;
  private Tensor ids;
  private Tensor tokenTypes;
  private Tensor mask;
  private boolean hasTokenTypes;
  private boolean hasMask;
  private BertEmbeddings.Activations embActs;
  private BertLayer.Activations[] layerActs;
  private BertPooler.Activations poolerActs;
  private BertLayer.Scratch scratch;
  /** (B*T) padded row of each real token, then (B*T) the inverse (packed: views sized n, B*T). */
  private Tensor packIdx;
  private Tensor packInv;
  /** (N, C) the packed embedding output, the encoder's input (packed). */
  private Tensor xPacked;
  /** Padding removal of the last forward, or null (padded path). */
  private Packing packing;
  private Tensor lastHidden;
  private boolean staged;
  private boolean forwardDone;
  private boolean closed;

  /**
   * Binds a model to parameters declared by {@link #declare} with the same prefix.
   *
   * @param ps the store
   * @param prefix "" for a bare BertModel, "bert" inside BertForSequenceClassification
   * @param config the configuration
   * @param addPoolingLayer whether the pooler exists
   * @param ownsParams whether {@link #close} closes the store
   */
  public BertModel(Parameters ps, String prefix, BertConfig config, boolean addPoolingLayer,
      boolean ownsParams) {
    this.be = ps.backend();
    this.config = config;
    this.params = ps;
    this.ownsParams = ownsParams;
    String p = dot(prefix);
    this.embeddings = new BertEmbeddings(ps, p + "embeddings", config);
    this.encoder = new BertEncoder(ps, p + "encoder", config);
    this.pooler = addPoolingLayer ? new BertPooler(ps, p + "pooler", config) : null;
    this.acts = new Arena(be, DType.F32);
    this.ints = new Arena(be, DType.I32);
    this.grads = new Arena(be, DType.F32);
    this.inferGraphs = new GraphCache(be, GraphCache.enabledByDefault());
  }

  static String dot(String prefix) {
    return prefix.isEmpty() ? "" : prefix + ".";
  }

  /** Declares the parameters of a BertModel under a prefix ("" or "bert"). */
  public static void declare(Parameters.Layout l, String prefix, BertConfig c,
      boolean addPoolingLayer) {
    String p = dot(prefix);
    BertEmbeddings.declare(l, p + "embeddings", c);
    BertEncoder.declare(l, p + "encoder", c);
    if (addPoolingLayer) {
      BertPooler.declare(l, p + "pooler", c);
    }
  }

  /** A fresh model with transformers' initialisation (seeded), owning its parameters. */
  public static BertModel create(Backend be, BertConfig c, boolean addPoolingLayer, long seed) {
    Parameters.Layout l = new Parameters.Layout();
    declare(l, "", c, addPoolingLayer);
    Parameters ps = Parameters.allocate(be, l);
    try {
      Checkpoints.initialize(ps, c, seed, name -> true);
      return new BertModel(ps, "", c, addPoolingLayer, true);
    } catch (RuntimeException | Error e) {
      ps.close();
      throw e;
    }
  }

  /**
   * Loads a Hugging Face folder ({@code config.json}, {@code model.safetensors}); keys with or
   * without the {@code bert.} prefix. A missing pooler is initialised (seeded) and reported on
   * stderr; any other missing or mis-shaped tensor is a {@link org.bertj.io.CheckpointException}.
   */
  public static BertModel fromPretrained(Backend be, Path dir, long seed) {
    return fromPretrained(be, dir, true, seed);
  }

  /**
   * {@link #fromPretrained(Backend, Path, long)}, with or without the pooler. Without it (for
   * features from the last hidden state, e.g. sentence embeddings) the checkpoint's pooler tensors,
   * if any, are not read, nothing is initialised and nothing is reported.
   */
  public static BertModel fromPretrained(Backend be, Path dir, boolean addPoolingLayer, long seed) {
    BertConfig c = BertConfig.read(dir.resolve("config.json"));
    Parameters.Layout l = new Parameters.Layout();
    declare(l, "", c, addPoolingLayer);
    Parameters ps = Parameters.allocate(be, l);
    try {
      Checkpoints.load(ps, dir.resolve("model.safetensors"), c, seed,
          name -> name.startsWith("pooler."));
      return new BertModel(ps, "", c, addPoolingLayer, true);
    } catch (RuntimeException | Error e) {
      ps.close();
      throw e;
    }
  }

  /** Writes {@code model.safetensors} (keys without prefix, as transformers' BertModel) and config.json. */
  public void save(Path dir) {
    Checkpoints.save(params, dir, config);
  }

  public BertConfig config() {
    return config;
  }

  public Parameters parameters() {
    return params;
  }

  public Backend backend() {
    return be;
  }

  public BertEmbeddings embeddings() {
    return embeddings;
  }

  public BertEncoder encoder() {
    return encoder;
  }

  /** The pooler, or null when the model has none. */
  public BertPooler pooler() {
    return pooler;
  }

  /**
   * Checks a batch against the model: T within max_position_embeddings, every token id in
   * [0, vocab_size) and token type in [0, type_vocab_size), naming the batch row and position.
   */
  public void validate(Batch batch) {
    int tt = batch.seqLen();
    if (tt > config.getMaxPositionEmbeddings()) {
      throw new IllegalArgumentException("sequence length " + tt
          + " exceeds max_position_embeddings " + config.getMaxPositionEmbeddings());
    }
    int[] id = batch.inputIds();
    for (int i = 0; i < id.length; i++) {
      if (id[i] < 0 || id[i] >= config.getVocabSize()) {
        throw new IllegalArgumentException("token id " + id[i] + " at batch row " + i / tt
            + ", position " + i % tt + " is outside the vocabulary [0, " + config.getVocabSize()
            + ")");
      }
    }
    int[] ty = batch.tokenTypeIds();
    if (ty != null) {
      for (int i = 0; i < ty.length; i++) {
        if (ty[i] < 0 || ty[i] >= config.getTypeVocabSize()) {
          throw new IllegalArgumentException("token type " + ty[i] + " at batch row " + i / tt
              + ", position " + i % tt + " is outside [0, " + config.getTypeVocabSize() + ")");
        }
      }
    }
  }

  private void checkOpen() {
    if (closed || params.isClosed()) {
      throw new IllegalStateException("model is closed");
    }
  }

  /**
   * Lays out the views for (nb, nt) and, packed (np >= 0), np real tokens; a new key re-lays them
   * (the memory grows only when needed).
   */
  private void ensureActivations(int nb, int nt, int np) {
    if (layerActs != null && nb == actsB && nt == actsT && np == actsN) {
      return;
    }
    int bt = nb * nt;
    boolean packed = np >= 0;
    int n = packed ? np : bt;
    int c = config.getHiddenSize();
    Tensor[] io = ints.layout(() -> new Tensor[] {ints.take(bt), ints.take(bt), ints.take(bt),
        packed ? ints.take(n) : null, packed ? ints.take(bt) : null});
    ids = io[0];
    tokenTypes = io[1];
    mask = io[2];
    packIdx = io[3];
    packInv = io[4];
    Object[] a = acts.layout(() -> new Object[] {embeddings.activations(acts, bt),
        encoder.activations(acts, nb, nt, n, packed),
        pooler == null ? null : pooler.activations(acts, nb),
        packed ? acts.take(n, c) : null, packed ? acts.take(bt, c) : null});
    embActs = (BertEmbeddings.Activations) a[0];
    layerActs = (BertLayer.Activations[]) a[1];
    poolerActs = (BertPooler.Activations) a[2];
    xPacked = (Tensor) a[3];
    Tensor lastPadded = packed ? (Tensor) a[4] : layerActs[layerActs.length - 1].out();
    lastHidden = lastPadded.reshape(nb, nt, c);
    actsB = nb;
    actsT = nt;
    actsN = np;
  }

  private void ensureGradScratch() {
    int np = packing == null ? -1 : packing.n;
    if (scratch != null && gradsB == b && gradsT == t && gradsN == np) {
      return;
    }
    int bt = b * t;
    int n = np >= 0 ? np : bt;
    scratch = grads.layout(() -> new BertLayer.Scratch(grads, n, bt, np >= 0,
        config.getHiddenSize(), config.getIntermediateSize()));
    gradsB = b;
    gradsT = t;
    gradsN = np;
  }

  /**
   * The padding removal index of a batch: inv (B*T), each padded row's packed row or -1, with the
   * real-token count N = number of entries >= 0; or null when the padded path runs (no mask,
   * bertj.pack=false, a sequence whose first token is a pad, or pads below the threshold).
   */
  private int[] packInverse(int[] m, int nb, int nt) {
    if (!packEnabled || m == null) {
      return null;
    }
    int bt = nb * nt;
    int real = 0;
    for (int i = 0; i < bt; i++) {
      if (m[i] != 0) {
        real++;
      }
    }
    int pads = bt - real;
    if (pads == 0 || pads < packMinPadFraction * bt) {
      return null;
    }
    for (int i = 0; i < nb; i++) {
      if (m[i * nt] == 0) {
        return null; // the pooler reads position 0, which packing does not compute for a pad
      }
    }
    int[] inv = new int[bt];
    int k = 0;
    for (int i = 0; i < bt; i++) {
      inv[i] = m[i] != 0 ? k++ : -1;
    }
    return inv;
  }

  /**
   * Runs the model on a batch. Training switches dropout on, with the step's seed; the backward
   * reproduces the same masks. Token ids are checked before any native code runs. The same as
   * {@link #stage} then {@link #compute}; not training, with inference graphs on ({@link
   * #useInferenceGraphs}), the ops of a batch shape seen before are replayed from a graph.
   */
  public void forward(Batch batch, boolean training, long seed) {
    stage(batch, training, seed);
    if (training) {
      compute();
    } else {
      inferGraphs.run(List.of(stageKey(), params.isLowFresh()), this::compute);
    }
  }

  /**
   * The host half of {@link #forward}: checks the batch, lays out the workspace for its shape and
   * uploads its inputs (token ids, types, mask, the padding-removal index). {@link #compute} then
   * only queues ops (it can be captured into a graph). Dropout's seed: this one, or the backend's
   * step scalars when set.
   */
  public void stage(Batch batch, boolean training, long seed) {
    stage(batch, training, seed, true);
  }

  /**
   * {@link #stage} for inference: no dropout, and nothing is kept for a backward (the ops skip the
   * outputs only the backward reads); {@link #backward} then throws.
   */
  public void stageInference(Batch batch) {
    stage(batch, false, 0L, !LEAN_INFERENCE);
  }

  /**
   * bertj.lean.inference=false (read once): inference forwards keep what a backward needs, as
   * before they skipped it (for side-by-side timing).
   */
  static final boolean LEAN_INFERENCE =
      !"false".equalsIgnoreCase(System.getProperty("bertj.lean.inference"));

  void stage(Batch batch, boolean training, long seed, boolean grad) {
    checkOpen();
    validate(batch);
    b = batch.batchSize();
    t = batch.seqLen();
    forwardDone = false;
    staged = false;
    int[] inv = packInverse(batch.attentionMask(), b, t);
    int np = -1;
    if (inv != null) {
      np = 0;
      for (int v : inv) {
        np += v >= 0 ? 1 : 0;
      }
    }
    packing = null;
    ensureActivations(b, t, np);
    if (inv != null) {
      int[] idx = new int[np];
      for (int i = 0; i < inv.length; i++) {
        if (inv[i] >= 0) {
          idx[inv[i]] = i;
        }
      }
      be.upload(packIdx, idx);
      be.upload(packInv, inv);
      packing = new Packing(np, packIdx, packInv);
    }
    if (training) {
      ensureGradScratch();
    }
    be.upload(ids, batch.inputIds());
    hasTokenTypes = batch.tokenTypeIds() != null;
    if (hasTokenTypes) {
      be.upload(tokenTypes, batch.tokenTypeIds());
    }
    hasMask = batch.attentionMask() != null;
    if (hasMask) {
      be.upload(mask, batch.attentionMask());
    }
    rng.reset(training, seed);
    rng.setSavesForBackward(grad);
    staged = true;
    // The outputs are workspace views: this batch's once compute's ops (or a replay) have run.
    forwardDone = true;
  }

  /**
   * The device half of {@link #forward}, after {@link #stage}: queues the model's ops on the staged
   * inputs (no allocation, no host copy). Its only Java state is the dropout offsets, the same
   * every time for the same stage, so it can be captured into a graph and replayed.
   */
  public void compute() {
    checkOpen();
    if (!staged) {
      throw new IllegalStateException("compute needs a stage first");
    }
    rng.restart();
    Tensor tt = hasTokenTypes ? tokenTypes : null;
    Tensor m = hasMask ? mask : null;
    embeddings.forward(embActs, ids, tt, b, t, rng);
    int c = config.getHiddenSize();
    Tensor x = embActs.out;
    if (packing != null) {
      be.gatherRows(xPacked, embActs.out, packing.idx, packing.n, c);
      x = xPacked;
    }
    Tensor last = encoder.forward(layerActs, x, m, b, t, rng, packing);
    if (packing != null) {
      last = lastHidden.reshape((long) b * t, c);
      be.gatherRows(last, layerActs[layerActs.length - 1].out(), packing.inv, b * t, c);
    }
    if (pooler != null) {
      pooler.forward(poolerActs, last, b, t);
    }
  }

  /**
   * What {@link #compute} (and the backward) of the staged batch depend on besides the data in
   * the staged tensors: shape, real-token count when packed (else -1), optional inputs, training.
   * Equal keys queue the same ops with the same arguments (for graph caches).
   */
  public Object stageKey() {
    // (workspace addresses are not in it: a workspace that moves frees its old memory, which
    // invalidates every graph captured before)
    return List.of(b, t, packing == null ? -1 : packing.n, hasMask, hasTokenTypes,
        rng.training(), rng.savesForBackward());
  }

  /** Whether the last forward removed the padding (for tests). */
  boolean lastForwardPacked() {
    return packing != null;
  }

  /**
   * Inference forward: no dropout, and nothing kept for a backward ({@link #stageInference});
   * with inference graphs on ({@link #useInferenceGraphs}), the ops of a batch shape seen before
   * are replayed from a graph.
   */
  public void forward(Batch batch) {
    stageInference(batch);
    inferGraphs.run(List.of(stageKey(), params.isLowFresh()), this::compute);
  }

  /**
   * Whether a forward that is not training captures its ops into a graph per batch shape and
   * replays them ({@link GraphCache}); default: the system property bertj.graphs (false).
   * Returns the cache (its counts).
   */
  public GraphCache useInferenceGraphs(boolean on) {
    checkOpen();
    inferGraphs.close();
    inferGraphs = new GraphCache(be, on);
    return inferGraphs;
  }

  /** The inference graph cache (also used by a classification head's inference forwards). */
  GraphCache inferenceGraphs() {
    return inferGraphs;
  }

  /** Dropout state of the last forward (the head continues its offsets). */
  DropoutRng rng() {
    return rng;
  }

  /** B of the last forward. */
  public int batchSize() {
    return b;
  }

  /** T of the last forward. */
  public int seqLen() {
    return t;
  }

  private void checkForward() {
    checkOpen();
    if (!forwardDone) {
      throw new IllegalStateException("no forward has run");
    }
  }

  /**
   * (B, T, C) the last hidden state of the last forward (a workspace view). Its pad rows are zero
   * when the forward removed the padding (see the class comment), the pad tokens' states otherwise.
   */
  public Tensor lastHiddenState() {
    checkForward();
    return lastHidden;
  }

  /** (B, C) the pooler output of the last forward (a workspace view). */
  public Tensor pooledOutput() {
    checkForward();
    if (pooler == null) {
      throw new IllegalStateException("this model has no pooling layer");
    }
    return poolerActs.pooled;
  }

  /** (B, T, C) embedding output (after LayerNorm and dropout) of the last forward. */
  public Tensor embeddingOutput() {
    checkForward();
    return embActs.out.reshape(b, t, config.getHiddenSize());
  }

  /**
   * Accumulates ("+=") every parameter gradient of the last forward, from dSequence (B*T*C, the
   * gradient of the last hidden state; null = 0; its pad rows are ignored when the forward removed
   * the padding) and dPooled (B*C; null = 0; overwritten).
   */
  public void backward(Tensor dSequence, Tensor dPooled) {
    checkForward();
    if (!rng.savesForBackward()) {
      throw new IllegalStateException("the last forward was an inference forward, which keeps "
          + "nothing for a backward: use forward(batch, training, seed)");
    }
    ensureGradScratch();
    int c = config.getHiddenSize();
    Tensor g = scratch.gPad; // (B*T, C); the same tensor as scratch.g unless packed
    if (dSequence != null) {
      be.copy(g, dSequence);
    } else {
      be.zero(g);
    }
    Tensor last = lastHidden.reshape((long) b * t, c);
    if (dPooled != null) {
      if (pooler == null) {
        throw new IllegalStateException("this model has no pooling layer");
      }
      pooler.backward(poolerActs, last, dPooled, g, b, t);
    }
    Tensor m = hasMask ? mask : null;
    if (packing == null) {
      encoder.backward(layerActs, embActs.out, m, scratch, b, t, rng);
      embeddings.backward(embActs, g, scratch.gAttn, ids, hasTokenTypes ? tokenTypes : null, b,
          t, rng);
    } else {
      be.gatherRows(scratch.g, g, packing.idx, packing.n, c);
      encoder.backward(layerActs, xPacked, m, scratch, b, t, rng, packing);
      be.gatherRows(g, scratch.g, packing.inv, b * t, c);
      embeddings.backward(embActs, g, scratch.dctxPad, ids, hasTokenTypes ? tokenTypes : null, b,
          t, rng);
    }
  }

  /** Backend memory of the workspace, in elements (activations + gradient scratch + inputs). */
  public long workspaceElements() {
    return acts.capacity() + grads.capacity() + ints.capacity();
  }

  /** Frees the workspace, and the parameters when this model owns them. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      inferGraphs.close();
      acts.close();
      grads.close();
      ints.close();
    } finally {
      if (ownsParams) {
        params.close();
      }
    }
  }

  /** Parameter names in buffer order. */
  public List<String> parameterNames() {
    return params.list().stream().map(Parameter::name).toList();
  }
}
