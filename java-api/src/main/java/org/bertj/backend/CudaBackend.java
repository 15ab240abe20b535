package org.bertj.backend;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import org.bertj.nativ.BertjCuda;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUgraphExec_st;
import org.bytedeco.cuda.cudart.CUgraph_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;

/**
 * The CUDA backend: bertj's CUDA kernels ({@code libbertj_cuda.so}) and cuBLAS, both from the
 * bytedeco {@code cuda} preset's cudart (the machine's CUDA 13 libraries, found through the
 * library path). All work is queued on one stream. Device memory comes from a caching allocator:
 * freed blocks are kept per size and reused, so a training loop that frees and allocates the
 * same shapes calls {@code cudaMalloc} only during its first step.
 */
public final class CudaBackend extends NativeBackend {
  private static final long ROUND = 512;

  private final CUstream_st stream;
  private final cublasContext blas;
  private final FloatPointer alphaBuf = new FloatPointer(1);
  private final FloatPointer betaBuf = new FloatPointer(1);
  private final Map<Long, ArrayDeque<Long>> cache = new HashMap<>();
  private final Map<Long, Long> blocks = new HashMap<>();
  private long mallocCalls;
  private long cachedBytes;
  private long liveBytes;
  private long liveTensors;
  private boolean closed;
  private long stagingAddress;
  private long stagingBytes;
  /** Pinned upload buffers used in turn; each waits on its last copy's event before reuse. */
  private final UploadSlot[] uploads = new UploadSlot[8];
  private int nextUpload;

  /** One pinned host buffer for asynchronous uploads and the event of its last copy. */
  private static final class UploadSlot {
    long address;
    long bytes;
    final CUevent_st done = new CUevent_st();
    boolean pending;
  }

  /** The number of CUDA devices; loads cudart (throws if the driver is missing). */
  public static int deviceCount() {
    Loader.load(cudart.class);
    int[] n = new int[1];
    int st = cudart.cudaGetDeviceCount(n);
    return st == 0 ? n[0] : -st;
  }

  public CudaBackend() {
    super(new CudaKernels());
    int n = deviceCount();
    if (n <= 0) {
      throw new IllegalStateException("no CUDA device (cudaGetDeviceCount: " + n + ")");
    }
    check(cudart.cudaSetDevice(0), "cudaSetDevice");
    Loader.load(BertjCuda.class);
    stream = new CUstream_st();
    check(cudart.cudaStreamCreate(stream), "cudaStreamCreate");
    blas = new cublasContext();
    blasCheck(cublas.cublasCreate_v2(blas), "cublasCreate");
    blasCheck(cublas.cublasSetStream_v2(blas, stream), "cublasSetStream");
    // fp32 reference path: no TF32 (CUBLAS_DEFAULT_MATH).
    blasCheck(cublas.cublasSetMathMode(blas, cublas.CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }

  private static void check(int status, String op) {
    if (status != 0) {
      throw new NativeException(op, status, cudart.cudaGetErrorString(status).getString());
    }
  }

  private static void blasCheck(int status, String op) {
    if (status != 0) {
      throw new NativeException(op, status, cublas.cublasGetStatusString(status).getString());
    }
  }

  @Override
  public String name() {
    return "cuda:0";
  }

  @Override
  public Device device() {
    return Device.CUDA;
  }

  @Override
  long stream() {
    return onSide ? side.address() : stream.address();
  }

  private cublasContext blas() {
    return onSide ? sideBlas : blas;
  }

  // ---- the side stream (on by default; bertj.cuda.overlap=false turns it off) ----

  /**
   * A linear layer's backward runs its weight-gradient GEMM and bias gradient on a second stream,
   * concurrently with the input-gradient GEMM on the main stream (they are independent; small
   * GEMMs leave SMs idle in their last wave), joined before the call returns, so everything after
   * it sees both. Off while profiling, or with bertj.cuda.overlap=false. Measured on an H200
   * (2026-11-26, docs/gpu-runs/2026-11-26-h200-s3-ab): SST-2 fine-tuning epoch (MiniLM, bf16)
   * 4.01 s with it, 4.74 s without; BERT-base b32 training steps 0.4 ms (fp32) and 0.08 ms (bf16)
   * faster.
   */
  private final boolean overlap = !"false".equalsIgnoreCase(System.getProperty("bertj.cuda.overlap"));
  private CUstream_st side;
  private cublasContext sideBlas;
  private CUevent_st forkEvent;
  private CUevent_st joinEvent;
  /** Ops are being queued on the side stream (stream() and blas() answer it). */
  private boolean onSide;

  private boolean overlapNow() {
    if (!overlap || profEvents != null || closed || (capturing && side == null)) {
      return false; // (the side stream is not created inside a capture)
    }
    if (side == null) {
      CUstream_st s = new CUstream_st();
      check(cudart.cudaStreamCreateWithFlags(s, cudart.cudaStreamNonBlocking), "cudaStreamCreate(side)");
      cublasContext h = new cublasContext();
      blasCheck(cublas.cublasCreate_v2(h), "cublasCreate(side)");
      blasCheck(cublas.cublasSetStream_v2(h, s), "cublasSetStream(side)");
      blasCheck(cublas.cublasSetMathMode(h, cublas.CUBLAS_DEFAULT_MATH), "cublasSetMathMode(side)");
      forkEvent = new CUevent_st();
      joinEvent = new CUevent_st();
      check(cudart.cudaEventCreateWithFlags(forkEvent, cudart.cudaEventDisableTiming), "cudaEventCreate");
      check(cudart.cudaEventCreateWithFlags(joinEvent, cudart.cudaEventDisableTiming), "cudaEventCreate");
      side = s;
      sideBlas = h;
    }
    return true;
  }

  /** Runs the weight-gradient part on the side stream and dx on the main one, then joins. */
  private void overlapped(Runnable sidePart, Runnable mainPart) {
    check(cudart.cudaEventRecord(forkEvent, stream), "cudaEventRecord(fork)");
    check(cudart.cudaStreamWaitEvent(side, forkEvent, 0), "cudaStreamWaitEvent(side)");
    onSide = true;
    try {
      sidePart.run();
    } finally {
      onSide = false;
    }
    mainPart.run();
    check(cudart.cudaEventRecord(joinEvent, side), "cudaEventRecord(join)");
    check(cudart.cudaStreamWaitEvent(stream, joinEvent, 0), "cudaStreamWaitEvent(main)");
  }

  @Override
  public void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dy, Tensor x, Tensor w,
      int n, int in, int out, boolean accumulate) {
    if (dx == null || !overlapNow()) {
      super.linearBackward(dx, dw, dbias, dy, x, w, n, in, out, accumulate);
      return;
    }
    overlapped(() -> super.linearBackward(null, dw, dbias, dy, x, w, n, in, out, accumulate),
        () -> gemm(false, false, n, in, out, 1f, dy, out, w, in, accumulate ? 1f : 0f, dx, in));
  }

  @Override
  public void linearBackwardBf16(Tensor dx, Tensor dw, Tensor dbias, Tensor dy, Tensor dyLow,
      Tensor xLow, Tensor wLow, int n, int in, int out, boolean accumulate) {
    if (dx == null || !overlapNow()) {
      super.linearBackwardBf16(dx, dw, dbias, dy, dyLow, xLow, wLow, n, in, out, accumulate);
      return;
    }
    overlapped(() -> super.linearBackwardBf16(null, dw, dbias, dy, dyLow, xLow, wLow, n, in, out,
        accumulate), () -> gemmBf16(false, false, n, in, out, 1f, dyLow, out, wLow, in,
            accumulate ? 1f : 0f, dx, in));
  }

  /** cudaMalloc calls so far (the caching allocator makes this flat after the first step). */
  public long mallocCalls() {
    return mallocCalls;
  }

  @Override
  public long liveBytes() {
    return liveBytes;
  }

  @Override
  public long liveTensors() {
    return liveTensors;
  }

  // ---- memory ----

  @Override
  public Tensor alloc(DType dtype, long... shape) {
    ensureOpen();
    notWhileCapturing("alloc");
    long n = Tensor.numel(shape);
    long bytes = Math.max(1L, Math.multiplyExact(n, (long) dtype.bytes()));
    long size = (bytes + ROUND - 1) / ROUND * ROUND;
    ArrayDeque<Long> free = cache.get(size);
    long address;
    if (free != null && !free.isEmpty()) {
      address = free.pop();
      cachedBytes -= size;
    } else {
      Pointer p = new Pointer();
      int st = cudart.cudaMalloc(p, size);
      if (st != 0 && cachedBytes > 0) {
        releaseCache();
        st = cudart.cudaMalloc(p, size);
      }
      check(st, "cudaMalloc(" + size + " bytes for " + dtype + java.util.Arrays.toString(shape) + ")");
      mallocCalls++;
      address = p.address();
      blocks.put(address, size);
    }
    check(cudart.cudaMemsetAsync(new Raw.B(address), 0, size, stream), "cudaMemsetAsync");
    liveBytes += size;
    liveTensors++;
    return new Tensor(this, dtype, shape, address, null, size);
  }

  @Override
  public void free(Tensor t) {
    if (t.backend() != this || !t.isOwner()) {
      throw new IllegalArgumentException("free: " + t + " is not an owned tensor of " + name());
    }
    notWhileCapturing("free of " + t);
    frees++; // graphs captured before this free may use its memory: they become invalid
    long size = (Long) t.handle();
    liveBytes -= size;
    liveTensors--;
    if (closed) {
      return;
    }
    // Reuse is safe: every kernel runs on this one stream, in order.
    cache.computeIfAbsent(size, s -> new ArrayDeque<>()).push(t.addressUnchecked());
    cachedBytes += size;
  }

  private void releaseCache() {
    check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    for (ArrayDeque<Long> q : cache.values()) {
      for (long a : q) {
        cudart.cudaFree(new Raw.B(a));
        blocks.remove(a);
      }
    }
    cache.clear();
    cachedBytes = 0;
  }

  private void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("the CUDA backend is closed");
    }
  }

  /**
   * Copies to the device without waiting for it: the data goes through one of a few pinned
   * buffers, used in turn; a buffer is rewritten only after its previous copy has completed
   * (its event). So a training step's batch upload does not stall the queue.
   */
  @Override
  public void upload(Tensor dst, float[] src) {
    f32(dst, "dst", src.length);
    UploadSlot s = uploadSlot(4L * src.length);
    new Raw.F(s.address, src.length).put(src, 0, src.length);
    uploadAsync(dst.address(), s, 4L * src.length);
  }

  @Override
  public void upload(Tensor dst, int[] src) {
    i32(dst, "dst", src.length);
    UploadSlot s = uploadSlot(4L * src.length);
    new Raw.I(s.address, src.length).put(src, 0, src.length);
    uploadAsync(dst.address(), s, 4L * src.length);
  }

  private UploadSlot uploadSlot(long bytes) {
    ensureOpen();
    notWhileCapturing("upload");
    int i = nextUpload;
    nextUpload = (nextUpload + 1) % uploads.length;
    UploadSlot s = uploads[i];
    if (s == null) {
      s = new UploadSlot();
      check(cudart.cudaEventCreateWithFlags(s.done, cudart.cudaEventDisableTiming),
          "cudaEventCreateWithFlags");
      uploads[i] = s;
    }
    if (s.pending) {
      check(cudart.cudaEventSynchronize(s.done), "cudaEventSynchronize");
      s.pending = false;
    }
    if (bytes > s.bytes) {
      if (s.address != 0) {
        cudart.cudaFreeHost(new Raw.B(s.address));
        s.address = 0;
        s.bytes = 0;
      }
      long size = Math.max(bytes, 1L << 16);
      Pointer p = new Pointer();
      check(cudart.cudaMallocHost(p, size), "cudaMallocHost(" + size + " bytes)");
      s.address = p.address();
      s.bytes = size;
    }
    return s;
  }

  private void uploadAsync(long dst, UploadSlot s, long bytes) {
    check(cudart.cudaMemcpyAsync(new Raw.B(dst), new Raw.B(s.address), bytes,
        cudart.cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync(upload)");
    check(cudart.cudaEventRecord(s.done, stream), "cudaEventRecord");
    s.pending = true;
    afterOp("upload");
  }

  @Override
  public float[] download(Tensor src) {
    float[] out = new float[Math.toIntExact(f32(src, "src").numel())];
    transfer(staging(4L * out.length), src.address(), 4L * out.length,
        cudart.cudaMemcpyDeviceToHost);
    new Raw.F(stagingAddress, out.length).get(out, 0, out.length);
    return out;
  }

  @Override
  public int[] downloadInts(Tensor src) {
    int[] out = new int[Math.toIntExact(i32(src, "src").numel())];
    transfer(staging(4L * out.length), src.address(), 4L * out.length,
        cudart.cudaMemcpyDeviceToHost);
    new Raw.I(stagingAddress, out.length).get(out, 0, out.length);
    return out;
  }

  /**
   * The pinned host staging buffer, grown to at least {@code bytes}; reused by every host copy
   * (no host allocation per batch upload). Returns its address.
   */
  private long staging(long bytes) {
    ensureOpen();
    notWhileCapturing("download");
    if (bytes > stagingBytes) {
      if (stagingAddress != 0) {
        cudart.cudaFreeHost(new Raw.B(stagingAddress));
        stagingAddress = 0;
        stagingBytes = 0;
      }
      long size = Math.max(bytes, 1L << 20);
      Pointer p = new Pointer();
      check(cudart.cudaMallocHost(p, size), "cudaMallocHost(" + size + " bytes)");
      stagingAddress = p.address();
      stagingBytes = size;
    }
    return stagingAddress;
  }

  /** One copy through the stream, waited for (the staging buffer is reused right after). */
  private void transfer(long dst, long src, long bytes, int kind) {
    check(cudart.cudaMemcpyAsync(new Raw.B(dst), new Raw.B(src), bytes, kind, stream),
        "cudaMemcpyAsync");
    check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }

  @Override
  public void copy(Tensor dst, Tensor src) {
    Tensor.require(src, "src", this, src.dtype());
    Tensor.require(dst, "dst", this, src.dtype());
    if (dst.numel() != src.numel()) {
      throw new IllegalArgumentException("copy: dst " + dst + " and src " + src + " differ in size");
    }
    check(cudart.cudaMemcpyAsync(new Raw.B(dst.address()), new Raw.B(src.address()), src.bytes(),
        cudart.cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync(copy)");
    afterOp("copy");
  }

  @Override
  public void zero(Tensor x) {
    Tensor.require(x, "x", this, x.dtype());
    check(cudart.cudaMemsetAsync(new Raw.B(x.address()), 0, x.bytes(), stream), "cudaMemsetAsync");
    afterOp("zero");
  }

  @Override
  public void synchronize() {
    notWhileCapturing("synchronize");
    check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }

  // ---- GEMM ----

  @Override
  public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a,
      int lda, Tensor b, int ldb, float beta, Tensor c, int ldc) {
    Gemm.check(this, transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
    gemmQueued(false, transA, transB, m, n, k, alpha, a.address(), lda, b.address(), ldb, beta,
        c.address(), ldc);
  }

  /**
   * A checked GEMM (fp32, or bf16 inputs with fp32 output): through cuBLASLt's tuned plan where
   * {@link CublasLt#gemm} takes it, else cuBLAS.
   */
  private void gemmQueued(boolean bf16, boolean transA, boolean transB, int m, int n, int k,
      float alpha, long a, int lda, long b, int ldb, float beta, long c, int ldc) {
    CublasLt l = gemmTune && !onSide ? lt() : null;
    if (l != null && l.gemm(bf16, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
        out -> cublasGemm(bf16, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, out, ldc))) {
      afterOp("lt gemm " + (bf16 ? "bf16 " : "fp32 ") + shape(transA, transB, m, n, k));
      return;
    }
    cublasGemm(bf16, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    afterOp("gemm " + (bf16 ? "bf16 " : "fp32 ") + shape(transA, transB, m, n, k));
  }

  private void cublasGemm(boolean bf16, boolean transA, boolean transB, int m, int n, int k,
      float alpha, long a, int lda, long b, int ldb, float beta, long c, int ldc) {
    if (bf16) {
      gemmEx(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    } else {
      sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
  }

  /** cublasSgemm on raw device addresses (row-major, as {@link #gemm}). */
  private void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, long a,
      int lda, long b, int ldb, float beta, long c, int ldc) {
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
    alphaBuf.put(0, alpha);
    betaBuf.put(0, beta);
    blasCheck(cublas.cublasSgemm_v2(blas(), transB ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N,
        transA ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N, n, m, k, alphaBuf,
        new Raw.F(b, 0), ldb, new Raw.F(a, 0), lda, betaBuf, new Raw.F(c, 0), ldc),
        "cublasSgemm");
  }

  // ---- CUDA graphs ----

  /** A capture is in progress on the main stream (ops are recorded, not run). */
  private boolean capturing;
  /** Tensors freed so far: a graph is valid while this equals its value at capture. */
  private long frees;
  private final java.util.List<CudaGraph> graphs = new java.util.ArrayList<>();

  private void notWhileCapturing(String what) {
    if (capturing) {
      throw new GraphCaptureException(what + " while a CUDA graph is being captured (only ops may "
          + "be queued inside a capture)");
    }
  }

  @Override
  public boolean isCapturing() {
    return capturing;
  }

  /**
   * Captures body's ops on the main stream (cudaStreamBeginCapture, thread-local mode; the side
   * stream joins through its fork/join events) into an instantiated CUDA graph. GEMM tuning does
   * not run inside a capture: a shape not tuned before uses cuBLAS (capture a step after an eager
   * one, as {@link GraphCache} does).
   */
  @Override
  public DeviceGraph captureGraph(Runnable body) {
    ensureOpen();
    notWhileCapturing("captureGraph");
    if (profEvents != null) {
      throw new GraphCaptureException("captureGraph while profiling");
    }
    check(cudart.cudaStreamBeginCapture(stream, cudart.cudaStreamCaptureModeThreadLocal),
        "cudaStreamBeginCapture");
    capturing = true;
    if (lt != null) {
      lt.setTuningAllowed(false);
    }
    Throwable failure = null;
    try {
      body.run();
    } catch (RuntimeException | Error e) {
      failure = e;
    } finally {
      capturing = false;
      if (lt != null) {
        lt.setTuningAllowed(true);
      }
    }
    CUgraph_st g = new CUgraph_st();
    int st = cudart.cudaStreamEndCapture(stream, g);
    if (failure != null || st != 0) {
      if (st == 0 && !g.isNull()) {
        cudart.cudaGraphDestroy(g);
      }
      cudart.cudaGetLastError(); // clear a sticky capture error, if any
      if (failure instanceof RuntimeException r) {
        throw r;
      }
      if (failure instanceof Error e) {
        throw e;
      }
      throw new GraphCaptureException("cudaStreamEndCapture failed (status " + st + "): "
          + cudart.cudaGetErrorString(st).getString());
    }
    try (org.bytedeco.javacpp.SizeTPointer count = new org.bytedeco.javacpp.SizeTPointer(1)) {
      count.put(0, 0);
      int nodes = cudart.cudaGraphGetNodes(g, null, count) == 0 ? (int) count.get(0) : -1;
      CUgraphExec_st exec = new CUgraphExec_st();
      int ist = cudart.cudaGraphInstantiate(exec, g, 0L);
      cudart.cudaGraphDestroy(g);
      if (ist != 0) {
        cudart.cudaGetLastError();
        throw new GraphCaptureException("cudaGraphInstantiate failed (status " + ist + "): "
            + cudart.cudaGetErrorString(ist).getString());
      }
      CudaGraph cg = new CudaGraph(exec, frees, nodes);
      graphs.add(cg);
      return cg;
    }
  }

  /** An instantiated CUDA graph, replayed on the main stream. */
  private final class CudaGraph implements DeviceGraph {
    private final CUgraphExec_st exec;
    private final long freesAtCapture;
    private final int nodes;
    private boolean graphClosed;

    CudaGraph(CUgraphExec_st exec, long frees, int nodes) {
      this.exec = exec;
      this.freesAtCapture = frees;
      this.nodes = nodes;
    }

    @Override
    public void replay() {
      if (!isValid()) {
        throw new IllegalStateException(graphClosed || closed ? "CUDA graph closed"
            : "CUDA graph invalid: a tensor was freed since it was captured");
      }
      notWhileCapturing("replay");
      check(cudart.cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
      afterOp("graph");
    }

    @Override
    public boolean isValid() {
      return !graphClosed && !closed && frees == freesAtCapture;
    }

    @Override
    public int size() {
      return nodes;
    }

    @Override
    public void close() {
      if (graphClosed) {
        return;
      }
      graphClosed = true;
      graphs.remove(this);
      if (!closed) {
        cudart.cudaGraphExecDestroy(exec);
      }
    }
  }

  // ---- profiling: an event after each queued op ----

  private java.util.List<CUevent_st> profEvents;
  private java.util.List<String> profNames;
  private final java.util.ArrayDeque<CUevent_st> eventPool = new java.util.ArrayDeque<>();

  @Override
  void afterOp(String op) {
    if (profEvents == null) {
      return;
    }
    CUevent_st e = eventPool.poll();
    if (e == null) {
      e = new CUevent_st();
      check(cudart.cudaEventCreate(e), "cudaEventCreate");
    }
    check(cudart.cudaEventRecord(e, stream), "cudaEventRecord");
    profEvents.add(e);
    profNames.add(op);
  }

  @Override
  public boolean startProfile() {
    ensureOpen();
    notWhileCapturing("startProfile");
    // Events made up front: creating them while recording slows the host enough that the device
    // waits, and those waits would be charged to ops.
    while (eventPool.size() < 4096) {
      CUevent_st e = new CUevent_st();
      check(cudart.cudaEventCreate(e), "cudaEventCreate");
      eventPool.add(e);
    }
    profEvents = new java.util.ArrayList<>();
    profNames = new java.util.ArrayList<>();
    afterOp("(start)");
    return true;
  }

  @Override
  public java.util.Map<String, double[]> stopProfile() {
    if (profEvents == null) {
      return java.util.Map.of();
    }
    synchronize();
    java.util.Map<String, double[]> sums = new java.util.HashMap<>();
    float[] ms = new float[1];
    for (int i = 1; i < profEvents.size(); i++) {
      check(cudart.cudaEventElapsedTime(ms, profEvents.get(i - 1), profEvents.get(i)),
          "cudaEventElapsedTime");
      double[] s = sums.computeIfAbsent(profNames.get(i), k -> new double[2]);
      s[0] += ms[0];
      s[1] += 1;
    }
    eventPool.addAll(profEvents);
    profEvents = null;
    profNames = null;
    java.util.Map<String, double[]> out = new java.util.LinkedHashMap<>();
    sums.entrySet().stream().sorted((a, b) -> Double.compare(b.getValue()[0], a.getValue()[0]))
        .forEach(en -> out.put(en.getKey(), en.getValue()));
    return out;
  }

  /**
   * cuBLASLt, created on first use, for the GEMMs of at least {@link CublasLt#TUNE_MIN_MACS}
   * multiply-adds (smaller ones use cuBLAS: tuning them costs more than it saves): linear layers
   * with a bias fuse it into the GEMM's epilogue, and every such GEMM on the main stream is tuned
   * on the first use of its shape (cuBLASLt's candidates timed against cuBLAS, the fastest kept;
   * the weight-gradient GEMMs on the side stream use cuBLAS, whose handle is bound to that
   * stream, as the tuning's timing is to the main one). On by default;
   * bertj.cublaslt=false and bertj.gemm.tune=false turn the two off. Measured on an H200
   * (2026-11-26, docs/gpu-runs/2026-11-26-h200-s3-ab, same call): BERT-base b32 training step
   * fp32 53.68 ms without both, 52.78 ms with both; bf16 10.79 / 10.30 ms; b256 bf16 and b128
   * inference also faster. Before the size threshold, SST-2 fine-tuning (MiniLM, ~60 sequence
   * lengths, all below it now) paid the tuning of every shape: 5.75 s per epoch instead of 4.74.
   */
  private CublasLt lt;
  /** Linear layers with a bias use cuBLASLt's bias epilogue (off: bertj.cublaslt=false). */
  private final boolean ltLinear = !"false".equalsIgnoreCase(System.getProperty("bertj.cublaslt"));
  /** Large GEMMs are tuned per shape (off: bertj.gemm.tune=false; {@link CublasLt#gemm}). */
  private final boolean gemmTune = !"false".equalsIgnoreCase(System.getProperty("bertj.gemm.tune"));
  /** cuBLASLt could not be set up (then everything uses cuBLAS). */
  private boolean ltOff = !ltLinear && !gemmTune;

  private CublasLt lt() {
    if (lt == null && !ltOff && !capturing) { // (not created inside a capture)
      try {
        lt = new CublasLt(stream);
      } catch (RuntimeException | LinkageError e) {
        ltOff = true;
        System.err.println("bertj: cuBLASLt unavailable (" + e.getMessage()
            + "); cuBLAS is used instead");
      }
    }
    return lt;
  }

  @Override
  public void linear(Tensor y, Tensor x, Tensor w, Tensor bias, int n, int in, int out) {
    if (bias != null) {
      Gemm.check(this, DType.F32, false, true, n, out, in, x, in, w, in, y, out);
      long b = f32(bias, "bias", out);
      CublasLt l = ltLinear ? lt() : null;
      if (l != null && l.linearBias(false, y.address(), x.address(), w.address(), b, n, in, out,
          () -> super.linear(y, x, w, bias, n, in, out))) {
        afterOp("lt linear+bias fp32 " + shape(false, true, n, out, in));
        return;
      }
    }
    super.linear(y, x, w, bias, n, in, out);
  }

  @Override
  public void linearBf16(Tensor y, Tensor xLow, Tensor wLow, Tensor bias, int n, int in,
      int out) {
    if (bias != null) {
      Gemm.check(this, DType.BF16, false, true, n, out, in, xLow, in, wLow, in, y, out);
      long b = f32(bias, "bias", out);
      CublasLt l = ltLinear ? lt() : null;
      if (l != null
          && l.linearBias(true, y.address(), xLow.address(), wLow.address(), b, n, in, out,
              () -> super.linearBf16(y, xLow, wLow, bias, n, in, out))) {
        afterOp("lt linear+bias bf16 " + shape(false, true, n, out, in));
        return;
      }
    }
    super.linearBf16(y, xLow, wLow, bias, n, in, out);
  }

  private String shape(boolean ta, boolean tb, int m, int n, int k) {
    return profEvents == null ? "" : (ta ? "T" : "N") + (tb ? "T" : "N") + " " + m + "x" + n + "x" + k;
  }

  /** bf16 inputs on the tensor cores, fp32 output and accumulation (cublasGemmEx). */
  @Override
  public void gemmBf16(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a,
      int lda, Tensor b, int ldb, float beta, Tensor c, int ldc) {
    Gemm.check(this, DType.BF16, transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
    gemmQueued(true, transA, transB, m, n, k, alpha, a.address(), lda, b.address(), ldb, beta,
        c.address(), ldc);
  }

  private void gemmEx(boolean transA, boolean transB, int m, int n, int k, float alpha, long a,
      int lda, long b, int ldb, float beta, long c, int ldc) {
    alphaBuf.put(0, alpha);
    betaBuf.put(0, beta);
    blasCheck(cublas.cublasGemmEx(blas(), transB ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N,
        transA ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N, n, m, k, alphaBuf,
        new Raw.B(b), cudart.CUDA_R_16BF, ldb, new Raw.B(a), cudart.CUDA_R_16BF, lda, betaBuf,
        new Raw.B(c), cudart.CUDA_R_32F, ldc, cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx(bf16)");
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    for (CudaGraph g : new java.util.ArrayList<>(graphs)) {
      g.close();
    }
    releaseCache();
    for (CUevent_st e : eventPool) {
      cudart.cudaEventDestroy(e);
    }
    eventPool.clear();
    if (lt != null) {
      lt.close();
      lt = null;
    }
    closed = true;
    // Tensors still open lose their memory here; using them afterwards is an error.
    for (long a : blocks.keySet()) {
      cudart.cudaFree(new Raw.B(a));
    }
    blocks.clear();
    cublas.cublasDestroy_v2(blas);
    if (side != null) {
      cublas.cublasDestroy_v2(sideBlas);
      cudart.cudaEventDestroy(forkEvent);
      cudart.cudaEventDestroy(joinEvent);
      cudart.cudaStreamDestroy(side);
    }
    cudart.cudaStreamDestroy(stream);
    alphaBuf.close();
    betaBuf.close();
    if (stagingAddress != 0) {
      cudart.cudaFreeHost(new Raw.B(stagingAddress));
      stagingAddress = 0;
    }
    for (int i = 0; i < uploads.length; i++) {
      UploadSlot s = uploads[i];
      if (s != null) {
        if (s.address != 0) {
          cudart.cudaFreeHost(new Raw.B(s.address));
        }
        cudart.cudaEventDestroy(s.done);
        uploads[i] = null;
      }
    }
  }
}
