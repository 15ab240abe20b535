package org.bertj.train;

/**
 * Training cannot go on: a NaN or infinite loss, an output folder that cannot be written, a
 * checkpoint that does not fit the run being resumed. The message says what happened and where the
 * last good checkpoint is.
 */
public class TrainingException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public TrainingException(String message) {
    super(message);
  }

  public TrainingException(String message, Throwable cause) {
    super(message, cause);
  }
}
