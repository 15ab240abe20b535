package org.bertj.backend;

/**
 * A captured sequence of queued ops ({@link Backend#captureGraph}), replayed as one unit: on CUDA
 * a CUDA graph (one launch instead of hundreds), on the CPU a recorded list of the same native
 * calls (an emulation that tests the capture rules where there is no GPU).
 *
 * <p>A replay runs the captured ops with the arguments they had when captured: the same
 * addresses, shapes and scalars. What differs from replay to replay must be data in backend
 * memory: the batch uploaded into the tensors the graph reads, and the per-step scalars
 * ({@link Backend#useStepScalars}). A graph may use any tensor that was alive at capture; it
 * becomes invalid as soon as any tensor of the backend is freed after the capture (the memory it
 * uses could have been handed to someone else), and {@link #replay} then throws.
 */
public interface DeviceGraph extends AutoCloseable {
  /** Queues the captured ops (CUDA: one graph launch on the backend's stream). */
  void replay();

  /** False once a tensor of the backend was freed since the capture, or after close. */
  boolean isValid();

  /** The number of ops (CUDA: graph nodes; CPU: recorded calls) captured. */
  int size();

  @Override
  void close();
}
