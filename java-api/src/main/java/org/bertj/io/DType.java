package org.bertj.io;

/** The element types of the safetensors format, with their names as they appear in the header. */
public enum DType {
    /** Boolean, one byte. */
    BOOL(1),
    /** Unsigned 8-bit integer. */
    U8(1),
    /** Signed 8-bit integer. */
    I8(1),
    /** 8-bit float, 5 exponent bits. */
    F8_E5M2(1),
    /** 8-bit float, 4 exponent bits. */
    F8_E4M3(1),
    /** Signed 16-bit integer. */
    I16(2),
    /** Unsigned 16-bit integer. */
    U16(2),
    /** IEEE 754 half precision. */
    F16(2),
    /** bfloat16: the upper half of an IEEE 754 single. */
    BF16(2),
    /** Signed 32-bit integer. */
    I32(4),
    /** Unsigned 32-bit integer. */
    U32(4),
    /** IEEE 754 single precision. */
    F32(4),
    /** IEEE 754 double precision. */
    F64(8),
    /** Signed 64-bit integer. */
    I64(8),
    /** Unsigned 64-bit integer. */
    U64(8);

    private final int size;

    DType(int size) {
        this.size = size;
    }

    /** @return bytes per element */
    public int size() {
        return size;
    }

    /**
     * Looks a header dtype up.
     *
     * @param name the dtype string of a safetensors header, e.g. {@code "F32"}
     * @return the dtype, or {@code null} when the name is not a safetensors dtype
     */
    public static DType fromName(String name) {
        for (DType d : values()) {
            if (d.name().equals(name)) {
                return d;
            }
        }
        return null;
    }

    /**
     * Decodes an IEEE 754 half-precision value (the bits of a {@code F16} element).
     *
     * @param bits the 16 bits, in the low half of the int
     * @return the value as a float (exact: every half is representable)
     */
    public static float halfToFloat(int bits) {
        int sign = (bits & 0x8000) << 16;
        int exp = (bits >>> 10) & 0x1f;
        int mant = bits & 0x3ff;
        if (exp == 0x1f) { // inf / NaN
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        if (exp == 0) {
            if (mant == 0) {
                return Float.intBitsToFloat(sign);
            }
            // subnormal: mant * 2^-24
            float v = mant * 0x1p-24f;
            return sign == 0 ? v : -v;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }

    /**
     * Decodes a bfloat16 value (the bits of a {@code BF16} element).
     *
     * @param bits the 16 bits, in the low half of the int
     * @return the value as a float (exact)
     */
    public static float bf16ToFloat(int bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }
}
