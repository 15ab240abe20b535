package org.bertj.backend;

import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;

/**
 * JavaCPP pointers over memory owned elsewhere (a {@link Tensor}): they never free it. Used to
 * hand tensor addresses to bytedeco APIs (OpenBLAS, cudart, cuBLAS) and to copy host arrays.
 */
final class Raw {
  private Raw() {}

  static final class F extends FloatPointer {
    F(long address, long count) {
      this.address = address;
      this.limit = count;
      this.capacity = count;
    }
  }

  static final class I extends IntPointer {
    I(long address, long count) {
      this.address = address;
      this.limit = count;
      this.capacity = count;
    }
  }

  static final class B extends BytePointer {
    B(long address) {
      this.address = address;
    }
  }
}
