package org.bertj.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a <a href="https://github.com/huggingface/safetensors">safetensors</a> file through a memory
 * mapping.
 *
 * <p>The file is an 8-byte little-endian header length {@code N}, {@code N} bytes of JSON (an object
 * mapping each tensor name to {@code {"dtype", "shape", "data_offsets": [begin, end]}}, plus an
 * optional {@code "__metadata__"} object of strings), then the data section. {@link #open(Path)}
 * validates the whole header before anything is read: the header length, the JSON, every dtype and
 * shape, and that the data offsets tile the data section exactly (no overlap, no gap, nothing past the
 * end), each extent matching {@code numel * dtype size}. Any fault is a {@link CheckpointException}
 * naming the file and the tensor; sizes are checked before anything is allocated.
 *
 * <p>A file up to 2 GiB is mapped once; a larger one is mapped per tensor, in chunks, when read.
 * Reads are thread-safe. Close the reader to release the file.
 *
 * <pre>{@code
 * try (SafetensorsReader r = SafetensorsReader.open(dir.resolve("model.safetensors"))) {
 *     float[] w = r.readFloats("encoder.layer.0.attention.self.query.weight");
 * }
 * }</pre>
 */
public final class SafetensorsReader implements AutoCloseable {

    /** Largest header accepted: 100 MB (real headers are kilobytes). */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    /** Default largest single mapping: {@link Integer#MAX_VALUE} rounded down to 8 bytes. */
    static final long DEFAULT_CHUNK_BYTES = Integer.MAX_VALUE & ~7L;

    private static final ObjectMapper JSON =
            new ObjectMapper()
                    .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
                    .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final Path file;
    private final FileChannel channel;
    private final long dataStart;
    private final long chunkBytes;
    private final ByteBuffer whole; // the data section when it fits one mapping, else null
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsReader(
            Path file,
            FileChannel channel,
            long dataStart,
            long chunkBytes,
            ByteBuffer whole,
            Map<String, TensorInfo> tensors,
            Map<String, String> metadata) {
        this.file = file;
        this.channel = channel;
        this.dataStart = dataStart;
        this.chunkBytes = chunkBytes;
        this.whole = whole;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /**
     * Opens and validates a safetensors file.
     *
     * @param file the {@code .safetensors} file
     * @return the reader; close it when done
     * @throws CheckpointException if the file is not a valid safetensors file
     * @throws UncheckedIOException if the file cannot be read
     */
    public static SafetensorsReader open(Path file) {
        return open(file, DEFAULT_CHUNK_BYTES);
    }

    /** Package-private: {@code chunkBytes} lets tests exercise the large-file (chunked) path. */
    static SafetensorsReader open(Path file, long chunkBytes) {
        if (chunkBytes < 8 || chunkBytes % 8 != 0) {
            throw new IllegalArgumentException("chunkBytes must be a positive multiple of 8");
        }
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.READ);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open " + file, e);
        }
        try {
            SafetensorsReader r = parse(file, ch, chunkBytes);
            ch = null; // owned by the reader now
            return r;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        } finally {
            if (ch != null) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // already failing
                }
            }
        }
    }

    private static SafetensorsReader parse(Path file, FileChannel ch, long chunkBytes)
            throws IOException {
        long fileSize = ch.size();
        if (fileSize < 8) {
            throw new CheckpointException(
                    file, null,
                    "file is " + fileSize + " bytes, shorter than the 8-byte header length:"
                            + " truncated or not a safetensors file");
        }
        ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        readFully(ch, lenBuf, 0);
        long headerLen = lenBuf.getLong(0);
        if (headerLen < 0 || headerLen > MAX_HEADER_BYTES) {
            throw new CheckpointException(
                    file, "header length",
                    Long.toUnsignedString(headerLen) + " bytes is absurd (limit " + MAX_HEADER_BYTES
                            + "): corrupt or not a safetensors file");
        }
        if (headerLen < 2) {
            throw new CheckpointException(
                    file, "header length", headerLen + " bytes cannot hold a JSON object");
        }
        if (8 + headerLen > fileSize) {
            throw new CheckpointException(
                    file, "header length",
                    headerLen + " bytes runs past the end of the file (" + fileSize
                            + " bytes): truncated or not a safetensors file");
        }
        ByteBuffer headerBuf = ByteBuffer.allocate((int) headerLen);
        readFully(ch, headerBuf, 8);
        JsonNode root;
        try {
            root = JSON.readTree(headerBuf.array());
        } catch (JsonProcessingException e) {
            throw new CheckpointException(
                    file, "header", "is not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new CheckpointException(
                    file, "header",
                    "is not a JSON object but " + (root == null ? "empty" : root.getNodeType()));
        }
        long dataStart = 8 + headerLen;
        long dataLen = fileSize - dataStart;

        Map<String, String> metadata = new LinkedHashMap<>();
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = ((ObjectNode) root).fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getKey().equals("__metadata__")) {
                parseMetadata(file, e.getValue(), metadata);
            } else {
                tensors.put(e.getKey(), parseEntry(file, e.getKey(), e.getValue()));
            }
        }
        checkTiling(file, tensors.values(), dataLen);

        ByteBuffer whole = null;
        if (dataLen <= chunkBytes) {
            whole = ch.map(FileChannel.MapMode.READ_ONLY, dataStart, dataLen);
        }
        return new SafetensorsReader(
                file, ch, dataStart, chunkBytes, whole,
                Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
    }

    private static void parseMetadata(Path file, JsonNode node, Map<String, String> out) {
        if (!node.isObject()) {
            throw new CheckpointException(file, "__metadata__", "must be an object of strings");
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> m = it.next();
            if (!m.getValue().isTextual()) {
                throw new CheckpointException(
                        file, "__metadata__ '" + m.getKey() + "'",
                        "must be a string, not " + m.getValue().getNodeType());
            }
            out.put(m.getKey(), m.getValue().asText());
        }
    }

    private static TensorInfo parseEntry(Path file, String name, JsonNode node) {
        String what = "tensor '" + name + "'";
        if (!node.isObject()) {
            throw new CheckpointException(file, what, "entry must be an object, not " + node.getNodeType());
        }
        JsonNode dt = node.get("dtype");
        if (dt == null || !dt.isTextual()) {
            throw new CheckpointException(file, what, "missing or non-string \"dtype\"");
        }
        DType dtype = DType.fromName(dt.asText());
        if (dtype == null) {
            throw new CheckpointException(
                    file, what,
                    "unknown dtype \"" + dt.asText() + "\" (known: " + Arrays.toString(DType.values()) + ")");
        }
        JsonNode sh = node.get("shape");
        if (sh == null || !sh.isArray()) {
            throw new CheckpointException(file, what, "missing or non-array \"shape\"");
        }
        long[] shape = new long[sh.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw new CheckpointException(
                        file, what, "shape " + sh + ": dimension " + i + " is not a non-negative integer");
            }
            shape[i] = d.asLong();
            try {
                numel = Math.multiplyExact(numel, shape[i]);
            } catch (ArithmeticException ex) {
                throw new CheckpointException(file, what, "shape " + sh + " overflows 64 bits");
            }
        }
        JsonNode off = node.get("data_offsets");
        if (off == null || !off.isArray() || off.size() != 2) {
            throw new CheckpointException(file, what, "missing \"data_offsets\" [begin, end]");
        }
        for (JsonNode o : off) {
            if (!o.isIntegralNumber() || !o.canConvertToLong() || o.asLong() < 0) {
                throw new CheckpointException(
                        file, what, "data_offsets " + off + " are not non-negative integers");
            }
        }
        long begin = off.get(0).asLong();
        long end = off.get(1).asLong();
        if (end < begin) {
            throw new CheckpointException(file, what, "data_offsets " + off + " end before they begin");
        }
        long need;
        try {
            need = Math.multiplyExact(numel, dtype.size());
        } catch (ArithmeticException ex) {
            throw new CheckpointException(file, what, "shape " + sh + " overflows 64 bits");
        }
        if (end - begin != need) {
            throw new CheckpointException(
                    file, what,
                    "data_offsets " + off + " hold " + (end - begin) + " bytes but " + dtype + " "
                            + sh + " needs " + need);
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    /** The tensors must cover [0, dataLen) exactly, in some order, without overlap. */
    private static void checkTiling(Path file, java.util.Collection<TensorInfo> all, long dataLen) {
        List<TensorInfo> sorted = new ArrayList<>(all);
        sorted.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        long pos = 0;
        TensorInfo prev = null;
        for (TensorInfo t : sorted) {
            String what = "tensor '" + t.name() + "'";
            if (t.end() > dataLen) {
                throw new CheckpointException(
                        file, what,
                        "data_offsets [" + t.begin() + ", " + t.end() + "] run past the data section ("
                                + dataLen + " bytes): truncated file?");
            }
            if (t.begin() < pos) {
                throw new CheckpointException(
                        file, what,
                        "data_offsets [" + t.begin() + ", " + t.end() + "] overlap tensor '" + prev.name()
                                + "' [" + prev.begin() + ", " + prev.end() + "]");
            }
            if (t.begin() > pos) {
                throw new CheckpointException(
                        file, what,
                        "data_offsets [" + t.begin() + ", " + t.end() + "] leave a gap of "
                                + (t.begin() - pos) + " bytes after "
                                + (prev == null ? "the start of the data section"
                                        : "tensor '" + prev.name() + "' (ends at " + prev.end() + ")"));
            }
            pos = t.end();
            prev = t;
        }
        if (pos != dataLen) {
            throw new CheckpointException(
                    file, prev == null ? "data section" : "tensor '" + prev.name() + "'",
                    (dataLen - pos) + " bytes of data follow the last tensor (which ends at " + pos
                            + " of " + dataLen + "): a gap, or a header that lost entries");
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long pos) throws IOException {
        while (buf.hasRemaining()) {
            int n = ch.read(buf, pos + buf.position());
            if (n < 0) {
                throw new IOException("unexpected end of file");
            }
        }
    }

    /** @return the file this reader reads */
    public Path file() {
        return file;
    }

    /** @return the tensor names, in header order */
    public List<String> names() {
        return List.copyOf(tensors.keySet());
    }

    /** @return every tensor entry, by name, in header order */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /** @return the {@code __metadata__} strings (empty when absent) */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * @param name a tensor name
     * @return whether the file holds that tensor
     */
    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /**
     * @param name a tensor name
     * @return its header entry
     * @throws CheckpointException if there is no such tensor
     */
    public TensorInfo info(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new CheckpointException(file, "tensor '" + name + "'", "not found in this file");
        }
        return t;
    }

    /**
     * @param name a tensor name
     * @return its dtype
     */
    public DType dtype(String name) {
        return info(name).dtype();
    }

    /**
     * @param name a tensor name
     * @return its shape
     */
    public long[] shape(String name) {
        return info(name).shape();
    }

    /**
     * Reads a floating-point tensor as floats: F32 as is, F16 and BF16 widened exactly, F64 rounded.
     *
     * @param name a tensor name
     * @return a new array of {@code numel} floats, row-major
     * @throws CheckpointException if the tensor is absent, not a float dtype, or too big for an array
     */
    public float[] readFloats(String name) {
        TensorInfo t = info(name);
        float[] out = new float[arrayLength(t)];
        readFloats(name, out, 0);
        return out;
    }

    /**
     * Reads a floating-point tensor into an existing array (see {@link #readFloats(String)}).
     *
     * @param name a tensor name
     * @param dst the destination
     * @param offset where the first element goes
     * @throws java.nio.BufferOverflowException if {@code dst} is too small
     */
    public void readFloats(String name, float[] dst, int offset) {
        readFloats(name, FloatBuffer.wrap(dst, offset, dst.length - offset).slice());
    }

    /**
     * Reads a floating-point tensor into a buffer (e.g. a direct buffer shared with native code), at
     * the buffer's position, which advances by {@code numel}.
     *
     * @param name a tensor name
     * @param dst the destination
     * @throws java.nio.BufferOverflowException if {@code dst} has fewer than {@code numel} remaining
     */
    public void readFloats(String name, FloatBuffer dst) {
        TensorInfo t = info(name);
        if (dst.remaining() < t.numel()) {
            throw new java.nio.BufferOverflowException();
        }
        switch (t.dtype()) {
            case F32 -> forEachChunk(t, b -> dst.put(b.asFloatBuffer()));
            case F16 -> forEachChunk(t, b -> {
                while (b.remaining() >= 2) {
                    dst.put(DType.halfToFloat(b.getShort() & 0xffff));
                }
            });
            case BF16 -> forEachChunk(t, b -> {
                while (b.remaining() >= 2) {
                    dst.put(DType.bf16ToFloat(b.getShort() & 0xffff));
                }
            });
            case F64 -> forEachChunk(t, b -> {
                while (b.remaining() >= 8) {
                    dst.put((float) b.getDouble());
                }
            });
            default -> throw new CheckpointException(
                    file, "tensor '" + name + "'",
                    "dtype " + t.dtype() + " cannot be read as floats (F32, F16, BF16 or F64 can)");
        }
    }

    /**
     * Reads a floating-point tensor as doubles (F64 as is; F32, F16, BF16 widened exactly), e.g. the
     * float64 golden files.
     *
     * @param name a tensor name
     * @return a new array of {@code numel} doubles, row-major
     */
    public double[] readDoubles(String name) {
        TensorInfo t = info(name);
        if (t.dtype() == DType.F64) {
            double[] out = new double[arrayLength(t)];
            int[] pos = {0};
            forEachChunk(t, b -> {
                int n = b.remaining() / 8;
                b.asDoubleBuffer().get(out, pos[0], n);
                pos[0] += n;
            });
            return out;
        }
        if (t.dtype() == DType.F32 || t.dtype() == DType.F16 || t.dtype() == DType.BF16) {
            float[] f = readFloats(name);
            double[] out = new double[f.length];
            for (int i = 0; i < f.length; i++) {
                out[i] = f[i];
            }
            return out;
        }
        throw new CheckpointException(
                file, "tensor '" + name + "'",
                "dtype " + t.dtype() + " cannot be read as doubles (F64, F32, F16 or BF16 can)");
    }

    /**
     * Reads an integer tensor as longs (I64, I32, I16, I8, U8, U16, U32 and BOOL widened; U64 must
     * not exceed {@link Long#MAX_VALUE}).
     *
     * @param name a tensor name
     * @return a new array of {@code numel} longs, row-major
     */
    public long[] readLongs(String name) {
        TensorInfo t = info(name);
        long[] out = new long[arrayLength(t)];
        int[] pos = {0};
        switch (t.dtype()) {
            case I64 -> forEachChunk(t, b -> {
                int n = b.remaining() / 8;
                b.asLongBuffer().get(out, pos[0], n);
                pos[0] += n;
            });
            case U64 -> forEachChunk(t, b -> {
                while (b.remaining() >= 8) {
                    long v = b.getLong();
                    if (v < 0) {
                        throw new CheckpointException(
                                file, "tensor '" + name + "'",
                                "U64 value " + Long.toUnsignedString(v) + " does not fit a long");
                    }
                    out[pos[0]++] = v;
                }
            });
            case I32 -> forEachChunk(t, b -> {
                while (b.remaining() >= 4) {
                    out[pos[0]++] = b.getInt();
                }
            });
            case U32 -> forEachChunk(t, b -> {
                while (b.remaining() >= 4) {
                    out[pos[0]++] = b.getInt() & 0xffffffffL;
                }
            });
            case I16 -> forEachChunk(t, b -> {
                while (b.remaining() >= 2) {
                    out[pos[0]++] = b.getShort();
                }
            });
            case U16 -> forEachChunk(t, b -> {
                while (b.remaining() >= 2) {
                    out[pos[0]++] = b.getShort() & 0xffff;
                }
            });
            case I8 -> forEachChunk(t, b -> {
                while (b.hasRemaining()) {
                    out[pos[0]++] = b.get();
                }
            });
            case U8, BOOL -> forEachChunk(t, b -> {
                while (b.hasRemaining()) {
                    out[pos[0]++] = b.get() & 0xff;
                }
            });
            default -> throw new CheckpointException(
                    file, "tensor '" + name + "'",
                    "dtype " + t.dtype() + " cannot be read as integers");
        }
        return out;
    }

    /**
     * Reads an integer tensor as ints (see {@link #readLongs(String)}), checking each value fits.
     *
     * @param name a tensor name
     * @return a new array of {@code numel} ints
     */
    public int[] readInts(String name) {
        long[] l = readLongs(name);
        int[] out = new int[l.length];
        for (int i = 0; i < l.length; i++) {
            if (l[i] != (int) l[i]) {
                throw new CheckpointException(
                        file, "tensor '" + name + "'", "value " + l[i] + " at index " + i + " does not fit an int");
            }
            out[i] = (int) l[i];
        }
        return out;
    }

    /**
     * The raw little-endian bytes of a tensor, as a read-only view of the mapping (no copy).
     *
     * @param name a tensor name
     * @return a read-only buffer positioned at the first byte, little-endian
     * @throws CheckpointException if the tensor is 2 GiB or larger
     */
    public ByteBuffer rawBytes(String name) {
        TensorInfo t = info(name);
        if (t.byteSize() > DEFAULT_CHUNK_BYTES) {
            throw new CheckpointException(
                    file, "tensor '" + name + "'",
                    t.byteSize() + " bytes do not fit one ByteBuffer; use readFloats(name, FloatBuffer)");
        }
        return slice(t.begin(), t.byteSize()).asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    private int arrayLength(TensorInfo t) {
        long n = t.numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new CheckpointException(
                    file, "tensor '" + t.name() + "'",
                    n + " elements do not fit a Java array; read it into a FloatBuffer in parts");
        }
        return (int) n;
    }

    private interface ChunkConsumer {
        void accept(ByteBuffer littleEndian);
    }

    /** Hands the tensor's bytes over in one or more little-endian buffers, each a whole number of elements. */
    private void forEachChunk(TensorInfo t, ChunkConsumer c) {
        long len = t.byteSize();
        if (len == 0) {
            return;
        }
        long step = chunkBytes; // a multiple of 8, so of every element size
        for (long off = 0; off < len; off += step) {
            long n = Math.min(step, len - off);
            c.accept(slice(t.begin() + off, n).order(ByteOrder.LITTLE_ENDIAN));
        }
    }

    /** A view of {@code n <= Integer.MAX_VALUE} bytes of the data section starting at {@code off}. */
    private ByteBuffer slice(long off, long n) {
        if (whole != null) {
            return whole.slice((int) off, (int) n);
        }
        try {
            return channel.map(FileChannel.MapMode.READ_ONLY, dataStart + off, n);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot map " + file, e);
        }
    }

    /** Releases the file (mapped buffers already handed out stay valid until collected). */
    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot close " + file, e);
        }
    }
}
