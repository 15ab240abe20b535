package org.bertj.model;

import java.util.function.Supplier;
import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.Tensor;

/**
 * One F32 allocation carved into activation views. {@link #layout} runs a builder twice: once
 * measuring (every request returns null), then, after growing the allocation if needed, for
 * real. The memory is re-allocated only when a layout needs more than it holds.
 */
final class Arena implements AutoCloseable {
  private static final long ALIGN = 64; // elements (256 bytes)
  private final Backend be;
  private final DType dtype;
  private Tensor base;
  private long used;
  private boolean measuring;

  Arena(Backend be, DType dtype) {
    this.be = be;
    this.dtype = dtype;
  }

  /** A view of the given shape (null while measuring). */
  Tensor take(long... shape) {
    long n = Tensor.numel(shape);
    long off = used;
    used = Math.addExact(used, (n + ALIGN - 1) / ALIGN * ALIGN);
    return measuring ? null : base.view(off, shape);
  }

  /** Measures, grows the allocation if needed, and builds the views. */
  <T> T layout(Supplier<T> build) {
    measuring = true;
    used = 0;
    build.get();
    long need = Math.max(used, 1);
    measuring = false;
    if (base == null || base.numel() < need) {
      if (base != null) {
        base.close();
        base = null;
      }
      base = be.alloc(dtype, need);
    }
    used = 0;
    return build.get();
  }

  /** Elements allocated. */
  long capacity() {
    return base == null ? 0 : base.numel();
  }

  @Override
  public void close() {
    if (base != null) {
      base.close();
      base = null;
    }
  }
}
