package org.bertj.backend;

/**
 * Something that cannot be part of a {@link DeviceGraph} was asked for while capturing one
 * (an allocation, a free, a host copy, a synchronisation, a nested capture), or the device
 * refused the capture; the message says what.
 */
public final class GraphCaptureException extends IllegalStateException {
  private static final long serialVersionUID = 1L;

  public GraphCaptureException(String message) {
    super(message);
  }

  public GraphCaptureException(String message, Throwable cause) {
    super(message, cause);
  }
}
