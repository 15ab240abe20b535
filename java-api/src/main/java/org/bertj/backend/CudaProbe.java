package org.bertj.backend;

/**
 * Finds out, once, whether the CUDA backend can run here: the CUDA library was built into this
 * jar, the bytedeco cudart preset loads (it needs the driver's libcuda.so.1), and a device
 * answers. Any failure (UnsatisfiedLinkError included) means "no", with the reason.
 */
final class CudaProbe {
  private static volatile String reason;
  private static volatile boolean probed;

  private CudaProbe() {}

  /** null when CUDA is usable, else why not. */
  static synchronized String unavailableReason() {
    if (!probed) {
      reason = probe();
      probed = true;
    }
    return reason;
  }

  private static String probe() {
    if (CudaProbe.class.getResource("/org/bertj/nativ/linux-x86_64/libbertj_cuda.so") == null) {
      return "this build has no CUDA library (built without nvcc)";
    }
    try {
      Class<?> c = Class.forName("org.bertj.backend.CudaBackend");
      Object n = c.getMethod("deviceCount").invoke(null);
      int count = (Integer) n;
      return count > 0 ? null : "no device answered (cudaGetDeviceCount: " + count + ")";
    } catch (Throwable t) {
      Throwable root = t;
      while (root.getCause() != null) {
        root = root.getCause();
      }
      return root.getClass().getSimpleName() + ": " + root.getMessage();
    }
  }

  static Backend open() {
    try {
      return (Backend) Class.forName("org.bertj.backend.CudaBackend").getConstructor().newInstance();
    } catch (ReflectiveOperationException e) {
      Throwable cause = e.getCause() != null ? e.getCause() : e;
      if (cause instanceof RuntimeException) {
        throw (RuntimeException) cause;
      }
      throw new IllegalStateException("cannot open the CUDA backend: " + cause, cause);
    }
  }
}
