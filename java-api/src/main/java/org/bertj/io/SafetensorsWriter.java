package org.bertj.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes a safetensors file (F32, F64 and I64 tensors), atomically: the bytes go to {@code
 * <file>.tmp}, which is then renamed over {@code file}, so a reader never sees a half-written
 * checkpoint.
 *
 * <p>Tensors are written in the order they were added; the arrays are referenced, not copied, until
 * {@link #write(Path)}. The header is padded with spaces so that the data section starts 8-byte
 * aligned, as the reference implementation does.
 *
 * <pre>{@code
 * new SafetensorsWriter()
 *         .putF32("classifier.weight", w, numLabels, hidden)
 *         .putF32("classifier.bias", b, numLabels)
 *         .write(dir.resolve("model.safetensors"));
 * }</pre>
 */
public final class SafetensorsWriter {

    private static final ObjectMapper JSON = new ObjectMapper();

    private record Entry(DType dtype, long[] shape, Object data) {}

    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    /** Creates an empty writer. */
    public SafetensorsWriter() {}

    /**
     * Adds an F32 tensor.
     *
     * @param name the tensor name (unique, not {@code __metadata__})
     * @param data the values, row-major; {@code data.length} must equal the product of {@code shape}
     * @param shape the shape; none for a scalar
     * @return this writer
     */
    public SafetensorsWriter putF32(String name, float[] data, long... shape) {
        return put(name, DType.F32, shape, data, data.length);
    }

    /**
     * Adds an F32 tensor (int shape).
     *
     * @param name the tensor name
     * @param data the values, row-major
     * @param shape the shape
     * @return this writer
     */
    public SafetensorsWriter putF32(String name, float[] data, int... shape) {
        return putF32(name, data, toLong(shape));
    }

    /**
     * Adds an F64 tensor.
     *
     * @param name the tensor name
     * @param data the values, row-major
     * @param shape the shape
     * @return this writer
     */
    public SafetensorsWriter putF64(String name, double[] data, long... shape) {
        return put(name, DType.F64, shape, data, data.length);
    }

    /**
     * Adds an F64 tensor (int shape).
     *
     * @param name the tensor name
     * @param data the values, row-major
     * @param shape the shape
     * @return this writer
     */
    public SafetensorsWriter putF64(String name, double[] data, int... shape) {
        return putF64(name, data, toLong(shape));
    }

    /**
     * Adds an I64 tensor.
     *
     * @param name the tensor name
     * @param data the values, row-major
     * @param shape the shape
     * @return this writer
     */
    public SafetensorsWriter putI64(String name, long[] data, long... shape) {
        return put(name, DType.I64, shape, data, data.length);
    }

    /**
     * Adds an I64 tensor (int shape).
     *
     * @param name the tensor name
     * @param data the values, row-major
     * @param shape the shape
     * @return this writer
     */
    public SafetensorsWriter putI64(String name, long[] data, int... shape) {
        return putI64(name, data, toLong(shape));
    }

    /**
     * Adds a {@code __metadata__} string (e.g. {@code "format" -> "pt"}).
     *
     * @param key the key
     * @param value the value
     * @return this writer
     */
    public SafetensorsWriter putMetadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    private SafetensorsWriter put(String name, DType dtype, long[] shape, Object data, int length) {
        if (name == null || name.isEmpty() || name.equals("__metadata__")) {
            throw new IllegalArgumentException("bad tensor name: " + name);
        }
        if (entries.containsKey(name)) {
            throw new IllegalArgumentException("tensor '" + name + "' added twice");
        }
        long numel = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException(
                        "tensor '" + name + "': negative dimension in " + Arrays.toString(shape));
            }
            numel = Math.multiplyExact(numel, d);
        }
        if (numel != length) {
            throw new IllegalArgumentException(
                    "tensor '" + name + "': shape " + Arrays.toString(shape) + " has " + numel
                            + " elements but the array has " + length);
        }
        entries.put(name, new Entry(dtype, shape.clone(), data));
        return this;
    }

    private static long[] toLong(int[] shape) {
        long[] s = new long[shape.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = shape[i];
        }
        return s;
    }

    /**
     * Writes the file: to {@code <file>.tmp} first, flushed to disk, then renamed over {@code file}
     * (atomically where the file system can).
     *
     * @param file the destination, e.g. {@code model.safetensors}
     * @throws UncheckedIOException if writing fails (the temporary file is removed)
     */
    public void write(Path file) {
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode m = header.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        long offset = 0;
        for (Map.Entry<String, Entry> e : entries.entrySet()) {
            Entry en = e.getValue();
            long bytes = Math.multiplyExact(numel(en.shape), en.dtype.size());
            ObjectNode t = header.putObject(e.getKey());
            t.put("dtype", en.dtype.name());
            ArrayNode s = t.putArray("shape");
            for (long d : en.shape) {
                s.add(d);
            }
            t.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        int padded = (json.length + 7) & ~7;

        AtomicFiles.write(file, tmp -> {
            try (FileChannel ch = FileChannel.open(
                    tmp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.WRITE)) {
                ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
                buf.putLong(padded);
                ByteBuffer head = ByteBuffer.allocate(padded);
                head.put(json);
                while (head.hasRemaining()) {
                    head.put((byte) ' ');
                }
                head.flip();
                putAll(ch, buf, head);
                for (Entry en : entries.values()) {
                    writeData(ch, buf, en);
                }
                buf.flip();
                writeFully(ch, buf);
                ch.force(true);
            }
        });
    }

    private static void putAll(FileChannel ch, ByteBuffer buf, ByteBuffer src) throws IOException {
        while (src.hasRemaining()) {
            if (!buf.hasRemaining()) {
                buf.flip();
                writeFully(ch, buf);
                buf.clear();
            }
            int n = Math.min(buf.remaining(), src.remaining());
            ByteBuffer part = src.slice();
            part.limit(n);
            buf.put(part);
            src.position(src.position() + n);
        }
    }

    private static void writeData(FileChannel ch, ByteBuffer buf, Entry en) throws IOException {
        int size = en.dtype.size();
        int length = switch (en.dtype) {
            case F32 -> ((float[]) en.data).length;
            case F64 -> ((double[]) en.data).length;
            default -> ((long[]) en.data).length;
        };
        int i = 0;
        while (i < length) {
            if (buf.remaining() < size) {
                buf.flip();
                writeFully(ch, buf);
                buf.clear();
            }
            int n = Math.min(length - i, buf.remaining() / size);
            switch (en.dtype) {
                case F32 -> buf.asFloatBuffer().put((float[]) en.data, i, n);
                case F64 -> buf.asDoubleBuffer().put((double[]) en.data, i, n);
                default -> buf.asLongBuffer().put((long[]) en.data, i, n);
            }
            buf.position(buf.position() + n * size);
            i += n;
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }
}
