package org.bertj.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {

    @TempDir Path dir;

    /** A file: 8-byte header length, the header, then {@code data}. */
    private Path raw(String name, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).put(data);
        Path p = dir.resolve(name);
        Files.write(p, b.array());
        return p;
    }

    private Path raw(String name, String header, int dataBytes) throws IOException {
        return raw(name, header, new byte[dataBytes]);
    }

    private static CheckpointException bad(Path p) {
        return assertThrows(CheckpointException.class, () -> SafetensorsReader.open(p).close());
    }

    private static void assertNames(CheckpointException e, Path p, String... parts) {
        String m = e.getMessage();
        assertTrue(m.contains(p.getFileName().toString()), "no file name in: " + m);
        for (String s : parts) {
            assertTrue(m.contains(s), "no '" + s + "' in: " + m);
        }
    }

    @Test
    void roundTrip() {
        Random rnd = new Random(1);
        float[] w = new float[6 * 5];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        float[] b = {1.5f, -2f, Float.MIN_VALUE, Float.MAX_VALUE, -0f};
        long[] ids = {101, 7592, 2088, 102, Long.MAX_VALUE, -1};
        double[] g = {Math.PI, -Math.E, 1e-300};
        Path p = dir.resolve("model.safetensors");
        new SafetensorsWriter()
                .putMetadata("format", "pt")
                .putF32("encoder.layer.0.attention.self.query.weight", w, 6, 5)
                .putF32("encoder.layer.0.attention.self.query.bias", b, 5)
                .putI64("input_ids", ids, 2, 3)
                .putF64("logits", g, 3)
                .putF32("scalar", new float[] {42f})
                .putF32("empty", new float[0], 0, 4)
                .write(p);
        assertFalse(Files.exists(dir.resolve("model.safetensors.tmp")));

        for (long chunk : new long[] {SafetensorsReader.DEFAULT_CHUNK_BYTES, 16}) {
            try (SafetensorsReader r = SafetensorsReader.open(p, chunk)) {
                assertEquals(
                        List.of("encoder.layer.0.attention.self.query.weight",
                                "encoder.layer.0.attention.self.query.bias",
                                "input_ids", "logits", "scalar", "empty"),
                        r.names());
                assertEquals("pt", r.metadata().get("format"));
                assertEquals(DType.F32, r.dtype("encoder.layer.0.attention.self.query.weight"));
                assertArrayEquals(new long[] {6, 5}, r.shape("encoder.layer.0.attention.self.query.weight"));
                assertArrayEquals(w, r.readFloats("encoder.layer.0.attention.self.query.weight"));
                assertArrayEquals(b, r.readFloats("encoder.layer.0.attention.self.query.bias"));
                assertArrayEquals(ids, r.readLongs("input_ids"));
                assertArrayEquals(g, r.readDoubles("logits"));
                assertArrayEquals(new long[0], r.shape("scalar"));
                assertArrayEquals(new float[] {42f}, r.readFloats("scalar"));
                assertEquals(0, r.readFloats("empty").length);
                assertArrayEquals(new long[] {0, 4}, r.shape("empty"));
                // into an existing array / a direct buffer
                float[] dst = new float[7];
                r.readFloats("encoder.layer.0.attention.self.query.bias", dst, 2);
                assertEquals(1.5f, dst[2]);
                FloatBuffer fb = ByteBuffer.allocateDirect(4 * 30).order(ByteOrder.nativeOrder()).asFloatBuffer();
                r.readFloats("encoder.layer.0.attention.self.query.weight", fb);
                assertEquals(30, fb.position());
                assertEquals(w[29], fb.get(29));
                assertEquals(w[3], r.rawBytes("encoder.layer.0.attention.self.query.weight").getFloat(12));
                CheckpointException e = assertThrows(CheckpointException.class, () -> r.readFloats("input_ids"));
                assertNames(e, p, "input_ids", "I64");
                e = assertThrows(CheckpointException.class, () -> r.info("nope"));
                assertNames(e, p, "nope");
            }
        }
        // an existing file is replaced
        new SafetensorsWriter().putF32("x", new float[] {3f}, 1).write(p);
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            assertEquals(List.of("x"), r.names());
        }
    }

    @Test
    void dataSectionIsAligned() throws IOException {
        Path p = dir.resolve("a.safetensors");
        new SafetensorsWriter().putF32("x", new float[] {1f}, 1).write(p);
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(p)).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(0, b.getLong(0) % 8);
    }

    @Test
    void decodesF16AndBf16() throws IOException {
        short[] f16 = {
            0x3C00, (short) 0xC000, 0x7BFF, 0x0001, 0x0400, 0x7C00, (short) 0xFC00, 0x3555, (short) 0x8000, 0x7E00
        };
        float[] f16Expect = {
            1f, -2f, 65504f, 0x1p-24f, 0x1p-14f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY,
            0.333251953125f, -0f, Float.NaN
        };
        short[] bf16 = {0x3F80, (short) 0xC040, 0x4049, 0x0001, 0x7F80};
        float[] bf16Expect = {1f, -3f, 3.140625f, Float.intBitsToFloat(0x00010000), Float.POSITIVE_INFINITY};
        ByteBuffer data = ByteBuffer.allocate(2 * (f16.length + bf16.length)).order(ByteOrder.LITTLE_ENDIAN);
        for (short s : f16) {
            data.putShort(s);
        }
        for (short s : bf16) {
            data.putShort(s);
        }
        int a = 2 * f16.length;
        int z = a + 2 * bf16.length;
        Path p = raw("half.safetensors",
                "{\"h\":{\"dtype\":\"F16\",\"shape\":[" + f16.length + "],\"data_offsets\":[0," + a + "]},"
                        + "\"b\":{\"dtype\":\"BF16\",\"shape\":[" + bf16.length + "],\"data_offsets\":[" + a + "," + z + "]}}",
                data.array());
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            assertArrayEquals(f16Expect, r.readFloats("h"));
            assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(r.readFloats("h")[8]));
            assertArrayEquals(bf16Expect, r.readFloats("b"));
            assertEquals(1.0, r.readDoubles("h")[0]);
        }
        // exhaustive: every finite half against the textbook formula
        for (int bits = 0; bits < 0x10000; bits++) {
            int exp = (bits >> 10) & 0x1f;
            int mant = bits & 0x3ff;
            if (exp == 0x1f) {
                continue;
            }
            double v = exp == 0 ? Math.scalb((double) mant, -24) : Math.scalb(1.0 + mant / 1024.0, exp - 15);
            if ((bits & 0x8000) != 0) {
                v = -v;
            }
            assertEquals((float) v, DType.halfToFloat(bits), "bits " + Integer.toHexString(bits));
        }
    }

    @Test
    void readsGoldenFilesWhenPresent() {
        Path golden = Paths.get(System.getProperty("bertj.golden.dir", "../../shared/golden"), "tiny-bert");
        Assumptions.assumeTrue(Files.isDirectory(golden), "no golden dir " + golden);
        try (SafetensorsReader r = SafetensorsReader.open(golden.resolve("golden.safetensors"))) {
            long[] ids = r.readLongs("input_ids");
            assertEquals(3 * 16, ids.length);
            assertEquals(DType.F64, r.dtype("logits"));
            assertEquals(9, r.readDoubles("logits").length);
            assertArrayEquals(new long[] {0, 2, 1}, r.readLongs("labels"));
        }
        try (SafetensorsReader r = SafetensorsReader.open(golden.resolve("model.safetensors"))) {
            assertEquals(512 * 64, r.readFloats("bert.embeddings.word_embeddings.weight").length);
        }
    }

    // ---- bad inputs: each message names the file and the tensor or field ----

    @Test
    void truncatedFile() throws IOException {
        Path p = dir.resolve("short.safetensors");
        Files.write(p, new byte[] {1, 2, 3, 4, 5});
        assertNames(bad(p), p, "5 bytes", "shorter than the 8-byte header length");
    }

    @Test
    void headerLengthPastEnd() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(40).order(ByteOrder.LITTLE_ENDIAN).putLong(1000);
        Path p = dir.resolve("pastend.safetensors");
        Files.write(p, b.array());
        assertNames(bad(p), p, "header length", "1000", "past the end of the file");
    }

    @Test
    void absurdHeaderLength() throws IOException {
        for (long len : new long[] {200_000_000L, -1L}) {
            ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(len);
            Path p = dir.resolve("absurd.safetensors");
            Files.write(p, b.array());
            assertNames(bad(p), p, "header length", "absurd");
        }
    }

    @Test
    void headerNotJsonOrNotObject() throws IOException {
        Path p = raw("notjson.safetensors", "{\"a\": [1, ", 0);
        assertNames(bad(p), p, "header", "not valid JSON");
        p = raw("array.safetensors", "[1, 2]", 0);
        assertNames(bad(p), p, "header", "not a JSON object");
        p = raw("dup.safetensors",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                        + "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4);
        assertNames(bad(p), p, "header", "a");
    }

    @Test
    void overlappingOffsets() throws IOException {
        Path p = raw("overlap.safetensors",
                "{\"first.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        + "\"second.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
        assertNames(bad(p), p, "tensor 'second.weight'", "overlap", "first.weight");
    }

    @Test
    void gapBetweenTensors() throws IOException {
        Path p = raw("gap.safetensors",
                "{\"first.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        + "\"second.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20);
        assertNames(bad(p), p, "tensor 'second.weight'", "gap of 4 bytes", "first.weight");
        // a gap at the start, and bytes after the last tensor
        p = raw("gap0.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
        assertNames(bad(p), p, "tensor 'w'", "gap");
        p = raw("tail.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12);
        assertNames(bad(p), p, "tensor 'w'", "8 bytes of data follow the last tensor");
    }

    @Test
    void offsetsPastData() throws IOException {
        Path p = raw("past.safetensors",
                "{\"embeddings.word_embeddings.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,64]}}", 32);
        assertNames(bad(p), p, "tensor 'embeddings.word_embeddings.weight'", "past the data section");
    }

    @Test
    void unknownDtype() throws IOException {
        Path p = raw("dtype.safetensors", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
        assertNames(bad(p), p, "tensor 'w'", "unknown dtype \"Q4\"");
    }

    @Test
    void shapeSizeMismatch() throws IOException {
        Path p = raw("mismatch.safetensors",
                "{\"pooler.dense.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12);
        assertNames(bad(p), p, "tensor 'pooler.dense.weight'", "hold 12 bytes", "needs 16");
        p = raw("mismatch16.safetensors",
                "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,12]}}", 12);
        assertNames(bad(p), p, "tensor 'w'", "needs 6");
    }

    @Test
    void badShape() throws IOException {
        Path p = raw("neg.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
        assertNames(bad(p), p, "tensor 'w'", "not a non-negative integer");
        p = raw("frac.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4);
        assertNames(bad(p), p, "tensor 'w'", "not a non-negative integer");
        p = raw("huge.safetensors",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4);
        assertNames(bad(p), p, "tensor 'w'", "overflows");
        p = raw("nooff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4);
        assertNames(bad(p), p, "tensor 'w'", "data_offsets");
    }

    @Test
    void hugeClaimedTensorDoesNotAllocate() throws IOException {
        // 2^40 elements claimed, but the file is tiny: rejected from the header, nothing allocated.
        Path p = raw("claim.safetensors",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776],\"data_offsets\":[0,4398046511104]}}", 16);
        assertNames(bad(p), p, "tensor 'w'", "past the data section");
    }
}
