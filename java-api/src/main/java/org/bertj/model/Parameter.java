package org.bertj.model;

import java.util.Arrays;
import org.bertj.backend.Tensor;

/**
 * One named parameter tensor of a model: a slice of the flat value and gradient buffers of its
 * {@link Parameters} store.
 *
 * @param name the Hugging Face name, e.g. {@code bert.encoder.layer.3.attention.self.query.weight}
 * @param shape the shape, as in the checkpoint (Linear weights are (out, in))
 * @param offset index of the first element in the flat buffers
 * @param decay whether AdamW's weight decay applies (Linear weights and embedding tables)
 * @param value a view of the values (closed with the store)
 * @param grad a view of the gradients (closed with the store)
 */
public record Parameter(String name, long[] shape, long offset, boolean decay, Tensor value,
    Tensor grad) {

  /** Copies the shape. */
  public Parameter {
    shape = shape.clone();
  }

  /** A copy of the shape. */
  @Override
  public long[] shape() {
    return shape.clone();
  }

  /** Number of elements. */
  public long numel() {
    return Tensor.numel(shape);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Parameter p && p.name.equals(name) && p.offset == offset
        && Arrays.equals(p.shape, shape);
  }

  @Override
  public int hashCode() {
    return name.hashCode();
  }

  @Override
  public String toString() {
    return name + Arrays.toString(shape) + "@" + offset + (decay ? "" : " (no decay)");
  }
}
