package org.bertj.backend;

import java.util.concurrent.atomic.AtomicLong;
import org.bertj.nativ.BertjCpu;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.openblas.global.openblas_nolapack;

/**
 * The CPU backend: bertj's OpenMP kernels ({@code libbertj_cpu.so}) and OpenBLAS SGEMM (bytedeco
 * {@code openblas} preset). Memory is plain host memory from {@code calloc}.
 */
public final class CpuBackend extends NativeBackend {
  static {
    NativeThreads.configure();
  }

  private final AtomicLong liveBytes = new AtomicLong();
  private final AtomicLong liveTensors = new AtomicLong();
  private final Recording rec;

  public CpuBackend() {
    this(new Recording());
  }

  private CpuBackend(Recording rec) {
    super(recordable(new CpuKernels(), rec));
    this.rec = rec;
  }

  // ---- graph capture, emulated: the ops are recorded as calls and replayed in order ----

  /** The ops being recorded (non-null while capturing) and the count of frees so far. */
  private static final class Recording {
    java.util.List<Runnable> ops;
    long frees;
    /** Inside an op's own temporaries (their frees are not counted). */
    int scratch;
  }

  /**
   * The kernels behind a proxy that, while a capture is recording, records each call (with its
   * arguments: addresses and scalars) instead of running it, and answers success; a replay runs
   * the recorded calls and turns a failed status into a {@link NativeException}, as an eager call
   * would.
   */
  private static Kernels recordable(CpuKernels real, Recording rec) {
    java.lang.reflect.InvocationHandler h = (proxy, m, args) -> {
      if (rec.ops != null && m.getDeclaringClass() == Kernels.class
          && m.getReturnType() == int.class) {
        rec.ops.add(() -> {
          int st = (int) invoke(m, real, args);
          if (st != 0) {
            throw new NativeException(m.getName(), st, real.lastError());
          }
        });
        return 0;
      }
      return invoke(m, real, args);
    };
    return (Kernels) java.lang.reflect.Proxy.newProxyInstance(Kernels.class.getClassLoader(),
        new Class<?>[] {Kernels.class}, h);
  }

  private static Object invoke(java.lang.reflect.Method m, Object target, Object[] args) {
    try {
      return m.invoke(target, args);
    } catch (IllegalAccessException e) {
      throw new IllegalStateException(e);
    } catch (java.lang.reflect.InvocationTargetException e) {
      Throwable c = e.getCause();
      if (c instanceof RuntimeException r) {
        throw r;
      }
      if (c instanceof Error err) {
        throw err;
      }
      throw new IllegalStateException(c);
    }
  }

  /** Runs op now, or records it while capturing. */
  private void queue(Runnable op) {
    if (rec.ops != null) {
      rec.ops.add(op);
    } else {
      op.run();
    }
  }

  private void notWhileCapturing(String what) {
    if (rec.ops != null) {
      throw new GraphCaptureException(what + " while a graph is being captured (only ops may be "
          + "queued inside a capture)");
    }
  }

  @Override
  public boolean isCapturing() {
    return rec.ops != null;
  }

  @Override
  public DeviceGraph captureGraph(Runnable body) {
    notWhileCapturing("captureGraph");
    java.util.List<Runnable> ops = new java.util.ArrayList<>();
    rec.ops = ops;
    try {
      body.run();
    } finally {
      rec.ops = null;
    }
    return new RecordedGraph(ops, rec.frees);
  }

  /** The CPU's graph: the recorded calls, valid while no tensor has been freed since. */
  private final class RecordedGraph implements DeviceGraph {
    private final java.util.List<Runnable> ops;
    private final long frees;
    private boolean closed;

    RecordedGraph(java.util.List<Runnable> ops, long frees) {
      this.ops = java.util.List.copyOf(ops);
      this.frees = frees;
    }

    @Override
    public void replay() {
      if (!isValid()) {
        throw new IllegalStateException(closed ? "graph closed"
            : "graph invalid: a tensor was freed since it was captured");
      }
      notWhileCapturing("replay");
      for (Runnable r : ops) {
        r.run();
      }
    }

    @Override
    public boolean isValid() {
      return !closed && rec.frees == frees;
    }

    @Override
    public int size() {
      return ops.size();
    }

    @Override
    public void close() {
      closed = true;
    }
  }

  /** OpenMP threads of the kernels. */
  public int threads() {
    return BertjCpu.bj_cpu_num_threads();
  }

  @Override
  public String name() {
    return "cpu";
  }

  @Override
  public Device device() {
    return Device.CPU;
  }

  @Override
  long stream() {
    return 0L;
  }

  /** Bytes held by tensors of this backend that are not closed yet. */
  @Override
  public long liveBytes() {
    return liveBytes.get();
  }

  /** Tensors of this backend that are not closed yet. */
  @Override
  public long liveTensors() {
    return liveTensors.get();
  }

  @Override
  public Tensor alloc(DType dtype, long... shape) {
    notWhileCapturing("alloc");
    long n = Tensor.numel(shape);
    long bytes = Math.max(1L, Math.multiplyExact(n, (long) dtype.bytes()));
    Pointer p = Pointer.calloc(bytes, 1);
    if (p == null || p.isNull()) {
      throw new OutOfMemoryError("cannot allocate " + bytes + " bytes of host memory for "
          + dtype + java.util.Arrays.toString(shape));
    }
    liveBytes.addAndGet(bytes);
    liveTensors.incrementAndGet();
    return new Tensor(this, dtype, shape, p.address(), null, p);
  }

  @Override
  public void free(Tensor t) {
    if (t.backend() != this || !t.isOwner()) {
      throw new IllegalArgumentException("free: " + t + " is not an owned tensor of " + name());
    }
    notWhileCapturing("free of " + t);
    if (rec.scratch == 0) {
      rec.frees++;
    }
    Pointer.free((Pointer) t.handle());
    liveBytes.addAndGet(-Math.max(1L, t.bytes()));
    liveTensors.decrementAndGet();
  }

  @Override
  public void upload(Tensor dst, float[] src) {
    notWhileCapturing("upload");
    f32(dst, "dst", src.length);
    try (FloatPointer p = new Raw.F(dst.address(), src.length)) {
      p.put(src, 0, src.length);
    }
  }

  @Override
  public void upload(Tensor dst, int[] src) {
    notWhileCapturing("upload");
    i32(dst, "dst", src.length);
    try (IntPointer p = new Raw.I(dst.address(), src.length)) {
      p.put(src, 0, src.length);
    }
  }

  @Override
  public float[] download(Tensor src) {
    notWhileCapturing("download");
    float[] out = new float[Math.toIntExact(f32(src, "src").numel())];
    try (FloatPointer p = new Raw.F(src.address(), out.length)) {
      p.get(out, 0, out.length);
    }
    return out;
  }

  @Override
  public int[] downloadInts(Tensor src) {
    notWhileCapturing("download");
    int[] out = new int[Math.toIntExact(i32(src, "src").numel())];
    try (IntPointer p = new Raw.I(src.address(), out.length)) {
      p.get(out, 0, out.length);
    }
    return out;
  }

  @Override
  public void copy(Tensor dst, Tensor src) {
    sameLayout(dst, src);
    long d = dst.address();
    long a = src.address();
    long bytes = src.bytes();
    queue(() -> Pointer.memcpy(new Raw.B(d), new Raw.B(a), bytes));
  }

  void sameLayout(Tensor dst, Tensor src) {
    Tensor.require(src, "src", this, src.dtype());
    Tensor.require(dst, "dst", this, src.dtype());
    if (dst.numel() != src.numel()) {
      throw new IllegalArgumentException("copy: dst " + dst + " and src " + src + " differ in size");
    }
  }

  @Override
  public void zero(Tensor x) {
    Tensor.require(x, "x", this, x.dtype());
    long a = x.address();
    long bytes = x.bytes();
    queue(() -> Pointer.memset(new Raw.B(a), 0, bytes));
  }

  @Override
  public void synchronize() {
    notWhileCapturing("synchronize");
  }

  @Override
  public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a,
      int lda, Tensor b, int ldb, float beta, Tensor c, int ldc) {
    Gemm.check(this, transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
    long pa = a.address();
    long pb = b.address();
    long pc = c.address();
    queue(() -> openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor,
        transA ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
        transB ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans, m, n, k, alpha,
        new Raw.F(pa, 0), lda, new Raw.F(pb, 0), ldb, beta, new Raw.F(pc, 0), ldc));
  }

  /**
   * The reference for {@link Backend#gemmBf16}: the BF16 operands widened to fp32 (exact), then
   * the fp32 GEMM; the same products as bf16 tensor cores with fp32 accumulation, up to the
   * order of the sums.
   */
  @Override
  public void gemmBf16(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a,
      int lda, Tensor b, int ldb, float beta, Tensor c, int ldc) {
    Gemm.check(this, DType.BF16, transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
    if (rec.ops != null) { // recorded whole: it allocates its fp32 operands when it runs
      rec.ops.add(() -> gemmBf16(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
      return;
    }
    long na = (long) ((transA ? k : m) - 1) * lda + (transA ? m : k);
    long nb = (long) ((transB ? n : k) - 1) * ldb + (transB ? k : n);
    rec.scratch++; // the temporaries live inside this call: their frees cannot affect a graph
    try (Tensor fa = alloc(DType.F32, na); Tensor fb = alloc(DType.F32, nb)) {
      fromBf16(fa, a.numel() == na ? a : a.view(0, na));
      fromBf16(fb, b.numel() == nb ? b : b.view(0, nb));
      gemm(transA, transB, m, n, k, alpha, fa, lda, fb, ldb, beta, c, ldc);
    } finally {
      rec.scratch--;
    }
  }

  @Override
  public void close() {}
}
