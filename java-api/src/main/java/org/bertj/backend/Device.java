package org.bertj.backend;

import java.util.Locale;

/** Where a {@link Backend} computes. {@code AUTO} resolves to CUDA when a device answers. */
public enum Device {
  AUTO,
  CPU,
  CUDA;

  /** Parses {@code auto|cpu|cuda} (case-insensitive), naming the bad value on failure. */
  public static Device parse(String s) {
    if (s == null) {
      return AUTO;
    }
    try {
      return valueOf(s.trim().toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("unknown device '" + s + "': expected auto, cpu or cuda");
    }
  }
}
