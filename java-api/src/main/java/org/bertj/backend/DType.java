package org.bertj.backend;

/** Element types of {@link Tensor}s. */
public enum DType {
  F32(4),
  I32(4),
  BF16(2),
  F16(2),
  U8(1);

  private final int bytes;

  DType(int bytes) {
    this.bytes = bytes;
  }

  /** Size of one element in bytes. */
  public int bytes() {
    return bytes;
  }
}
