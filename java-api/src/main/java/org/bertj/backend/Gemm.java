package org.bertj.backend;

/** Argument checks shared by the backends' GEMMs (row-major, leading dimensions in elements). */
final class Gemm {
  private Gemm() {}

  static void check(NativeBackend be, boolean transA, boolean transB, int m, int n, int k,
      Tensor a, int lda, Tensor b, int ldb, Tensor c, int ldc) {
    check(be, DType.F32, transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
  }

  /** inputs: the dtype of A and B (C is always F32). */
  static void check(NativeBackend be, DType inputs, boolean transA, boolean transB, int m, int n,
      int k, Tensor a, int lda, Tensor b, int ldb, Tensor c, int ldc) {
    if (m <= 0 || n <= 0 || k <= 0) {
      throw new IllegalArgumentException("gemm sizes must be > 0, got m=" + m + " n=" + n + " k=" + k);
    }
    Tensor.require(a, "A", be, inputs);
    Tensor.require(b, "B", be, inputs);
    be.f32(c, "C");
    // Row-major op(A) is (m, k): stored A is (m, k) or, transposed, (k, m).
    operand("A", a, transA ? k : m, transA ? m : k, lda);
    operand("B", b, transB ? n : k, transB ? k : n, ldb);
    operand("C", c, m, n, ldc);
  }

  private static void operand(String name, Tensor t, int rows, int cols, int ld) {
    if (ld < cols) {
      throw new IllegalArgumentException("gemm: ld" + name.toLowerCase() + "=" + ld + " < " + cols
          + " columns of " + name);
    }
    long needed = (long) (rows - 1) * ld + cols;
    if (t.numel() < needed) {
      throw new IllegalArgumentException("gemm: " + name + " " + t + " holds " + t.numel()
          + " elements, a (" + rows + ", " + cols + ") operand with ld " + ld + " needs " + needed);
    }
  }
}
