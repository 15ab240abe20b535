package org.bertj.io;

import java.util.Arrays;

/**
 * One entry of a safetensors header: name, dtype, shape, and where its bytes lie.
 *
 * @param name the tensor name, e.g. {@code encoder.layer.0.attention.self.query.weight}
 * @param dtype the element type
 * @param shape the shape (row-major); empty for a scalar
 * @param begin first byte, relative to the start of the data section
 * @param end one past the last byte, relative to the start of the data section
 */
public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {

    /** Copies the shape so that the record stays immutable. */
    public TensorInfo {
        shape = shape.clone();
    }

    /** @return a copy of the shape */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /**
     * @return the shape as ints (every safetensors dimension that can be read into a Java array fits)
     * @throws ArithmeticException if a dimension does not fit an int
     */
    public int[] shapeInt() {
        int[] s = new int[shape.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = Math.toIntExact(shape[i]);
        }
        return s;
    }

    /** @return the number of dimensions */
    public int rank() {
        return shape.length;
    }

    /** @return the number of elements (1 for a scalar) */
    public long numel() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** @return the number of bytes of data, {@code end - begin} */
    public long byteSize() {
        return end - begin;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t
                && name.equals(t.name)
                && dtype == t.dtype
                && Arrays.equals(shape, t.shape)
                && begin == t.begin
                && end == t.end;
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return name + " " + dtype + " " + Arrays.toString(shape) + " @[" + begin + ", " + end + ")";
    }
}
