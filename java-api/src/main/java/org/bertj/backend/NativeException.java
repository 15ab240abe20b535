package org.bertj.backend;

/** A native kernel returned an error status; the message names the op and the native reason. */
public final class NativeException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final int status;

  public NativeException(String op, int status, String detail) {
    super(op + " failed (status " + status + (detail == null || detail.isEmpty() ? ")" : "): " + detail));
    this.status = status;
  }

  /** The native status code (see bertj.h: 1 invalid argument, 2 CUDA error, 3 unsupported). */
  public int status() {
    return status;
  }
}
