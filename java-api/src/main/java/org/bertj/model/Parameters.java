package org.bertj.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import org.bertj.backend.Backend;
import org.bertj.backend.DType;
import org.bertj.backend.Precision;
import org.bertj.backend.Tensor;

/**
 * The parameters of a model in ONE flat F32 buffer of values and a parallel flat buffer of
 * gradients (an optimizer allocates its state the same size).
 *
 * <p>Layout: every weight-decayed tensor first (Linear weights, embedding tables), then the
 * tensors without decay (biases, LayerNorm weights and biases), as Hugging Face groups them, so
 * AdamW is one call with decay range {@code [0, nDecay())}. Within each group tensors keep their
 * declaration order, so tensors declared one after the other (query, key, value) are adjacent.
 */
public final class Parameters implements AutoCloseable {

  /** The declared tensors of a model, before allocation. */
  public static final class Layout {
    private record Decl(String name, long[] shape, boolean decay) {}

    private final List<Decl> decay = new ArrayList<>();
    private final List<Decl> noDecay = new ArrayList<>();
    private final Map<String, Boolean> names = new LinkedHashMap<>();

    /** Declares a weight-decayed tensor (Linear weight, embedding table). */
    public Layout decayed(String name, long... shape) {
      return add(new Decl(name, shape.clone(), true));
    }

    /** Declares a tensor without weight decay (bias, LayerNorm weight or bias). */
    public Layout notDecayed(String name, long... shape) {
      return add(new Decl(name, shape.clone(), false));
    }

    private Layout add(Decl d) {
      Tensor.numel(d.shape);
      if (names.putIfAbsent(d.name, d.decay) != null) {
        throw new IllegalArgumentException("parameter " + d.name + " declared twice");
      }
      (d.decay ? decay : noDecay).add(d);
      return this;
    }
  }

  private final Backend backend;
  private final Tensor values;
  private final Tensor grads;
  private final long nDecay;
  private final Map<String, Parameter> byName = new LinkedHashMap<>();
  private boolean closed;
  /**
   * bf16 copy of the values (mixed precision), or null. Invariant: when {@code lowStale} is
   * false, low holds exactly toBf16(values); anything that writes values sets lowStale (through
   * {@link #markValuesChanged()}) unless it writes the matching bf16 bits into low as well and
   * then calls {@link #markLowFresh()} (AdamW, with the optimizer op's bf16 side output).
   */
  private Tensor low;
  private boolean lowStale;
  /**
   * bf16 buffers by owner (grown on demand, reused: one stream runs in order): the two GEMM
   * input scratch slots, and each Linear's copy of its last forward input.
   */
  private final Map<Object, Tensor> lowBuffers = new HashMap<>();

  private Parameters(Backend backend, Layout layout) {
    this.backend = backend;
    long size = 0;
    long decayEnd = 0;
    List<Layout.Decl> all = new ArrayList<>(layout.decay);
    all.addAll(layout.noDecay);
    long[] offsets = new long[all.size()];
    for (int i = 0; i < all.size(); i++) {
      offsets[i] = size;
      size = Math.addExact(size, Tensor.numel(all.get(i).shape));
      if (i == layout.decay.size() - 1) {
        decayEnd = size;
      }
    }
    if (size == 0) {
      throw new IllegalArgumentException("a model needs at least one parameter");
    }
    this.nDecay = decayEnd;
    Tensor v = backend.alloc(DType.F32, size);
    Tensor g;
    try {
      g = backend.alloc(DType.F32, size);
    } catch (RuntimeException | Error e) {
      v.close();
      throw e;
    }
    this.values = v;
    this.grads = g;
    for (int i = 0; i < all.size(); i++) {
      Layout.Decl d = all.get(i);
      byName.put(d.name, new Parameter(d.name, d.shape, offsets[i], d.decay,
          v.view(offsets[i], d.shape), g.view(offsets[i], d.shape)));
    }
  }

  /** Allocates zero-filled values and gradients for a layout. */
  public static Parameters allocate(Backend backend, Layout layout) {
    return new Parameters(backend, layout);
  }

  public Backend backend() {
    return backend;
  }

  /** The parameter of that name; IllegalArgumentException naming it when absent. */
  public Parameter get(String name) {
    Parameter p = byName.get(name);
    if (p == null) {
      throw new IllegalArgumentException("no parameter named '" + name + "'");
    }
    return p;
  }

  /** The parameter of that name, if any. */
  public Optional<Parameter> find(String name) {
    return Optional.ofNullable(byName.get(name));
  }

  /** Every parameter in buffer order (decayed first). */
  public List<Parameter> list() {
    return Collections.unmodifiableList(new ArrayList<>(byName.values()));
  }

  /** Total number of elements of the flat buffers. */
  public long size() {
    return values.numel();
  }

  /** Elements [0, nDecay) take weight decay; [nDecay, size) do not. */
  public long nDecay() {
    return nDecay;
  }

  /**
   * The flat values (size()). Code that writes them directly (not through the optimizer,
   * {@link #copyValuesFrom} or the checkpoint loader) must call {@link #markValuesChanged()} so
   * that a bf16 copy is refreshed.
   */
  public Tensor values() {
    return values;
  }

  /** The working precision of the matrix multiplications that use these parameters. */
  public Precision precision() {
    return low != null ? Precision.BF16 : Precision.FP32;
  }

  /**
   * Switches the GEMM precision. BF16 keeps a bf16 copy of every value (refreshed lazily after
   * {@link #markValuesChanged()}); FP32 frees it. The fp32 values stay the master copy.
   */
  public void setPrecision(Precision p) {
    ensureOpen();
    if (p == Precision.BF16 && low == null) {
      low = backend.alloc(DType.BF16, values.numel());
      lowStale = true;
    } else if (p == Precision.FP32 && low != null) {
      closeLow();
    }
  }

  /** Says the fp32 values changed, so the bf16 copy (if any) is refreshed before its next use. */
  public void markValuesChanged() {
    lowStale = true;
  }

  /**
   * The whole bf16 copy of the values (BF16 precision only), NOT refreshed: for an op that
   * writes values and their bf16 bits together (AdamW's fused step), which then calls {@link
   * #markLowFresh()}. Readers use {@link #lowValue(Parameter)}.
   */
  public Tensor lowValues() {
    ensureOpen();
    if (low == null) {
      throw new IllegalStateException("parameters are in fp32: no bf16 copy");
    }
    return low;
  }

  /** True when the bf16 copy exists and equals toBf16 of the values (no refresh pending). */
  public boolean isLowFresh() {
    return low != null && !lowStale;
  }

  /**
   * Declares the bf16 copy equal to toBf16 of the values again: only for a caller that has just
   * written the bf16 bits of every value changed since the copy was last fresh (e.g. an AdamW
   * step over the whole store with {@link #lowValues()} as its bf16 output). Saves the refresh
   * that {@link #markValuesChanged()} would cause. BF16 precision only.
   */
  public void markLowFresh() {
    if (low == null) {
      throw new IllegalStateException("parameters are in fp32: no bf16 copy");
    }
    lowStale = false;
  }

  /** The bf16 copy of one parameter (BF16 precision only), refreshed first if stale. */
  public Tensor lowValue(Parameter p) {
    if (low == null) {
      throw new IllegalStateException("parameters are in fp32: no bf16 copy of " + p.name());
    }
    if (lowStale) {
      backend.toBf16(low, values);
      lowStale = false;
    }
    return low.view(p.offset(), p.shape());
  }

  /**
   * A BF16 scratch tensor of numel elements from slot 0 or 1 (each grown on demand and reused;
   * its contents are only valid until the next call for that slot).
   */
  public Tensor lowScratch(int slot, long numel) {
    if (slot != 0 && slot != 1) {
      throw new IllegalArgumentException("scratch slot " + slot + " (0 or 1)");
    }
    return lowBuffer(slot, numel);
  }

  /** The bf16 buffer of an owner, numel elements (grown on demand; freed with the bf16 copy). */
  Tensor lowBuffer(Object owner, long numel) {
    ensureOpen();
    Tensor t = lowBuffers.get(owner);
    if (t == null || t.numel() < numel) {
      if (t != null) {
        lowBuffers.remove(owner);
        t.close();
      }
      t = backend.alloc(DType.BF16, numel);
      lowBuffers.put(owner, t);
    }
    return t.numel() == numel ? t : t.view(0, numel);
  }

  private void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("the parameters are closed");
    }
  }

  private void closeLow() {
    try {
      if (low != null) {
        low.close();
      }
    } finally {
      low = null;
      for (Tensor t : lowBuffers.values()) {
        t.close();
      }
      lowBuffers.clear();
    }
  }

  /** The flat gradients (size()). */
  public Tensor grads() {
    return grads;
  }

  /** A view of {@code numel(shape)} values from element {@code offset}. */
  public Tensor valueView(long offset, long... shape) {
    return values.view(offset, shape);
  }

  /** A view of {@code numel(shape)} gradients from element {@code offset}. */
  public Tensor gradView(long offset, long... shape) {
    return grads.view(offset, shape);
  }

  /** grads[:] = 0. */
  public void zeroGrad() {
    backend.zero(grads);
  }

  /** Copies all values (and not the gradients) from another store of the same layout. */
  public void copyValuesFrom(Parameters other) {
    if (!other.byName.keySet().equals(byName.keySet()) || other.size() != size()) {
      throw new IllegalArgumentException("parameter layouts differ");
    }
    backend.copy(values, other.values);
    markValuesChanged();
  }

  public boolean isClosed() {
    return closed;
  }

  /** Frees both buffers (idempotent); every view becomes unusable. */
  @Override
  public void close() {
    if (!closed) {
      closed = true;
      try {
        closeLow();
        values.close();
      } finally {
        grads.close();
      }
    }
  }
}
