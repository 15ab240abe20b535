package org.bertj.backend;

import java.util.concurrent.atomic.AtomicBoolean;

/** Chooses and creates backends; CUDA is probed without ever crashing the JVM. */
final class Backends {
  private static final AtomicBoolean FALLBACK_SAID = new AtomicBoolean();

  private Backends() {}

  static Backend create(Device device) {
    Device d = device == null ? Device.AUTO : device;
    if (d == Device.AUTO) {
      String prop = System.getProperty("bertj.device");
      if (prop != null && !prop.isBlank()) {
        d = Device.parse(prop);
      }
    }
    switch (d) {
      case CPU:
        return new CpuBackend();
      case CUDA: {
        String why = CudaProbe.unavailableReason();
        if (why != null) {
          throw new IllegalStateException("--device cuda: no usable CUDA device (" + why + ")");
        }
        return CudaProbe.open();
      }
      default: {
        String why = CudaProbe.unavailableReason();
        if (why == null) {
          return CudaProbe.open();
        }
        if (FALLBACK_SAID.compareAndSet(false, true)) {
          System.err.println("bertj: no CUDA device (" + why + "); using the CPU");
        }
        return new CpuBackend();
      }
    }
  }
}
