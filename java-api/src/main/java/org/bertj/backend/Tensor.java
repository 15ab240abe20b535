package org.bertj.backend;

import java.util.Arrays;
import java.util.Objects;

/**
 * A typed, shaped view of backend memory (host memory on the CPU backend, device memory on
 * CUDA). A tensor made by {@link Backend#alloc} owns its memory and frees it on {@link #close};
 * a {@link #view} shares its parent's memory, and is unusable once the parent is closed.
 */
public final class Tensor implements AutoCloseable {
  private final Backend backend;
  private final DType dtype;
  private final long[] shape;
  private final long numel;
  private final long address;
  private final Tensor parent;
  private final Object handle;
  private boolean closed;

  Tensor(Backend backend, DType dtype, long[] shape, long address, Tensor parent, Object handle) {
    this.backend = backend;
    this.dtype = dtype;
    this.shape = shape.clone();
    this.numel = numel(shape);
    this.address = address;
    this.parent = parent;
    this.handle = handle;
  }

  /** Product of the dimensions; rejects negative ones. */
  public static long numel(long... shape) {
    long n = 1;
    for (long d : shape) {
      if (d < 0) {
        throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
      }
      n = Math.multiplyExact(n, d);
    }
    return n;
  }

  public Backend backend() {
    return backend;
  }

  public DType dtype() {
    return dtype;
  }

  /** A copy of the shape. */
  public long[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  /** Dimension i; negative i counts from the end. */
  public long dim(int i) {
    return shape[i < 0 ? shape.length + i : i];
  }

  public long numel() {
    return numel;
  }

  public long bytes() {
    return numel * dtype.bytes();
  }

  /** The raw address of element 0; throws if this tensor or its parent is closed. */
  public long address() {
    checkOpen();
    return address;
  }

  /** The address without the open check (for the backend freeing it). */
  long addressUnchecked() {
    return address;
  }

  Object handle() {
    return handle;
  }

  boolean isOwner() {
    return parent == null;
  }

  public boolean isClosed() {
    return closed || (parent != null && parent.isClosed());
  }

  /** Throws IllegalStateException if this tensor (or the tensor it views) was closed. */
  public void checkOpen() {
    if (isClosed()) {
      throw new IllegalStateException("tensor " + this + " is closed");
    }
  }

  /** A view of {@code numel(shape)} elements starting at element {@code offset}. */
  public Tensor view(long offset, long... shape) {
    checkOpen();
    long n = numel(shape);
    if (offset < 0 || offset + n > numel) {
      throw new IllegalArgumentException("view [" + offset + ", " + (offset + n) + ") of shape "
          + Arrays.toString(shape) + " is outside tensor of " + numel + " elements");
    }
    return new Tensor(backend, dtype, shape, address + offset * dtype.bytes(), this, null);
  }

  /** The same memory with another shape of the same element count. */
  public Tensor reshape(long... shape) {
    if (numel(shape) != numel) {
      throw new IllegalArgumentException("cannot reshape " + Arrays.toString(this.shape) + " to "
          + Arrays.toString(shape));
    }
    return view(0, shape);
  }

  /** Copies host values in (F32). */
  public Tensor copyFrom(float[] src) {
    backend.upload(this, src);
    return this;
  }

  /** Copies host values in (I32). */
  public Tensor copyFrom(int[] src) {
    backend.upload(this, src);
    return this;
  }

  /** The values as a new host array (F32). */
  public float[] toFloatArray() {
    return backend.download(this);
  }

  /** The values as a new host array (I32). */
  public int[] toIntArray() {
    return backend.downloadInts(this);
  }

  /** Frees owned memory (idempotent); a view only marks itself closed. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (parent == null) {
      backend.free(this);
    }
  }

  @Override
  public String toString() {
    return dtype + Arrays.toString(shape) + "@" + backend.name() + (parent != null ? "(view)" : "");
  }

  /** Requires a non-null, open tensor of this backend and dtype; names it in the error. */
  static Tensor require(Tensor t, String name, Backend b, DType dtype) {
    Objects.requireNonNull(t, () -> name + " must not be null");
    if (t.isClosed()) {
      throw new IllegalStateException(name + " (" + t + ") is closed");
    }
    if (t.backend != b) {
      throw new IllegalArgumentException(name + " lives on " + t.backend.name() + ", not " + b.name());
    }
    if (t.dtype != dtype) {
      throw new IllegalArgumentException(name + " must be " + dtype + ", got " + t.dtype);
    }
    return t;
  }
}
