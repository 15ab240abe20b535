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

  public CpuBackend() {
    super(new CpuKernels());
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
    Pointer.free((Pointer) t.handle());
    liveBytes.addAndGet(-Math.max(1L, t.bytes()));
    liveTensors.decrementAndGet();
  }

  @Override
  public void upload(Tensor dst, float[] src) {
    f32(dst, "dst", src.length);
    try (FloatPointer p = new Raw.F(dst.address(), src.length)) {
      p.put(src, 0, src.length);
    }
  }

  @Override
  public void upload(Tensor dst, int[] src) {
    i32(dst, "dst", src.length);
    try (IntPointer p = new Raw.I(dst.address(), src.length)) {
      p.put(src, 0, src.length);
    }
  }

  @Override
  public float[] download(Tensor src) {
    float[] out = new float[Math.toIntExact(f32(src, "src").numel())];
    try (FloatPointer p = new Raw.F(src.address(), out.length)) {
      p.get(out, 0, out.length);
    }
    return out;
  }

  @Override
  public int[] downloadInts(Tensor src) {
    int[] out = new int[Math.toIntExact(i32(src, "src").numel())];
    try (IntPointer p = new Raw.I(src.address(), out.length)) {
      p.get(out, 0, out.length);
    }
    return out;
  }

  @Override
  public void copy(Tensor dst, Tensor src) {
    sameLayout(dst, src);
    Pointer.memcpy(new Raw.B(dst.address()), new Raw.B(src.address()), src.bytes());
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
    Pointer.memset(new Raw.B(x.address()), 0, x.bytes());
  }

  @Override
  public void synchronize() {}

  @Override
  public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a,
      int lda, Tensor b, int ldb, float beta, Tensor c, int ldc) {
    Gemm.check(this, transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
    openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor,
        transA ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
        transB ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans, m, n, k, alpha,
        new Raw.F(a.address(), 0), lda, new Raw.F(b.address(), 0), ldb, beta,
        new Raw.F(c.address(), 0), ldc);
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
    long na = (long) ((transA ? k : m) - 1) * lda + (transA ? m : k);
    long nb = (long) ((transB ? n : k) - 1) * ldb + (transB ? k : n);
    try (Tensor fa = alloc(DType.F32, na); Tensor fb = alloc(DType.F32, nb)) {
      fromBf16(fa, a.numel() == na ? a : a.view(0, na));
      fromBf16(fb, b.numel() == nb ? b : b.view(0, nb));
      gemm(transA, transB, m, n, k, alpha, fa, lda, fb, ldb, beta, c, ldc);
    }
  }

  @Override
  public void close() {}
}
