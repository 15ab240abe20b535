package org.bertj.backend;

import org.bertj.nativ.LibC;

/**
 * Thread settings of the CPU backend's two native thread pools, applied before either loads.
 * The OpenMP kernels and OpenBLAS's GEMM threads alternate on the same cores; by default both
 * keep spinning after their work (libgomp for its spin count, OpenBLAS for 2^28 cycles), taking
 * the cores from each other. Measured on a 2-core machine, that spinning was a third of all CPU
 * time of a training step. Here OpenMP threads sleep when idle (OMP_WAIT_POLICY=PASSIVE) and
 * OpenBLAS's spin is short (OPENBLAS_THREAD_TIMEOUT=4). Values the user set are kept.
 */
final class NativeThreads {
  private static boolean done;

  private NativeThreads() {}

  static synchronized void configure() {
    if (done) {
      return;
    }
    done = true;
    try {
      LibC.setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
      LibC.setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    } catch (Throwable t) {
      // Only a performance setting: go on with the libraries' defaults.
    }
  }
}
