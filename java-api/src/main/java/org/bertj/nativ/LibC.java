package org.bertj.nativ;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * {@code setenv}/{@code getenv} of the C library, for settings that native libraries read once
 * when they load (OpenMP's wait policy, OpenBLAS's thread timeout). Its JNI library links nothing
 * else, so it can run before {@link BertjCpu} and OpenBLAS are loaded.
 */
@Platform(value = "linux-x86_64", include = "<stdlib.h>")
public final class LibC {
  static {
    Loader.load();
  }

  private LibC() {}

  public static native int setenv(String name, String value, int overwrite);

  public static native String getenv(String name);
}
