package org.bertj.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MiniLmConverterTest {

    @TempDir static Path weights;
    static Path model;
    static long convertMillis;

    @BeforeAll
    static void convert() {
        long t0 = System.nanoTime();
        model = MiniLmConverter.ensureConverted(weights);
        convertMillis = (System.nanoTime() - t0) / 1_000_000;
    }

    @Test
    void folderIsCompleteAndFast() throws IOException {
        assertEquals(weights.toAbsolutePath().resolve("all-MiniLM-L6-v2"), model);
        for (String f : MiniLmConverter.FILES) {
            assertTrue(Files.isRegularFile(model.resolve(f)), f);
        }
        try (Stream<Path> s = Files.list(weights)) {
            assertEquals(List.of(model), s.toList(), "temporary folder left behind");
        }
        try (Stream<Path> s = Files.list(model)) {
            assertEquals(3, s.count(), "stray files");
        }
        // ~90 MB of ONNX parsed and rewritten; a few seconds at most on a slow shared machine
        assertTrue(convertMillis < 30_000, "conversion took " + convertMillis + " ms");
        // second call: no work
        long t0 = System.nanoTime();
        assertEquals(model, MiniLmConverter.ensureConverted(weights));
        assertTrue((System.nanoTime() - t0) / 1_000_000 < 1_000);
    }

    @Test
    void config() {
        BertConfig c = BertConfig.forModel(model);
        assertEquals(30522, c.getVocabSize());
        assertEquals(384, c.getHiddenSize());
        assertEquals(6, c.getNumHiddenLayers());
        assertEquals(12, c.getNumAttentionHeads());
        assertEquals(1536, c.getIntermediateSize());
        assertEquals(512, c.getMaxPositionEmbeddings());
        assertEquals(2, c.getTypeVocabSize());
        assertEquals(1e-12, c.getLayerNormEps());
        assertEquals("gelu", c.getHiddenAct());
        assertEquals(0, c.getPadTokenId());
        assertEquals(List.of("BertModel"), c.getArchitectures());
    }

    @Test
    void namesAndShapesOfAllLayers() {
        BertConfig c = BertConfig.forModel(model);
        Map<String, long[]> expected = MiniLmConverter.expectedShapes(c);
        assertEquals(5 + 6 * 16, expected.size());
        try (SafetensorsReader r = SafetensorsReader.open(model.resolve("model.safetensors"))) {
            assertEquals(List.copyOf(expected.keySet()), r.names());
            for (Map.Entry<String, long[]> e : expected.entrySet()) {
                assertEquals(DType.F32, r.dtype(e.getKey()));
                assertArrayEquals(e.getValue(), r.shape(e.getKey()), e.getKey());
            }
            for (int l = 0; l < 6; l++) {
                String p = "encoder.layer." + l + ".";
                assertArrayEquals(new long[] {384, 384}, r.shape(p + "attention.self.query.weight"));
                assertArrayEquals(new long[] {1536, 384}, r.shape(p + "intermediate.dense.weight"));
                assertArrayEquals(new long[] {384, 1536}, r.shape(p + "output.dense.weight"));
                assertArrayEquals(new long[] {384}, r.shape(p + "output.LayerNorm.bias"));
            }
            assertFalse(r.contains("pooler.dense.weight"));
            assertFalse(r.contains("embeddings.position_ids"));
            assertEquals("pt", r.metadata().get("format"));
        }
    }

    @Test
    void linearWeightsAreTransposedBack() throws IOException {
        // onnx::MatMul_787 feeds /encoder/layer.0/attention/self/query/MatMul as (in, out) = (384, 384);
        // compare a few entries of the raw ONNX tensor with the converted (out, in) weight.
        float[] onnx = rawInitializer("onnx::MatMul_787");
        try (SafetensorsReader r = SafetensorsReader.open(model.resolve("model.safetensors"))) {
            float[] w = r.readFloats("encoder.layer.0.attention.self.query.weight");
            for (int[] ij : new int[][] {{0, 1}, {1, 0}, {5, 300}, {383, 2}}) {
                int out = ij[0];
                int in = ij[1];
                assertEquals(onnx[in * 384 + out], w[out * 384 + in]);
            }
            // a named tensor is copied as is
            float[] b = r.readFloats("encoder.layer.0.attention.self.query.bias");
            assertArrayEquals(rawInitializer("encoder.layer.0.attention.self.query.bias"), b);
        }
    }

    private static float[] rawInitializer(String name) throws IOException {
        try (InputStream in = MiniLmConverter.class.getClassLoader()
                .getResourceAsStream(MiniLmConverter.ONNX_RESOURCE)) {
            var cis = com.google.protobuf.CodedInputStream.newInstance(in);
            cis.setSizeLimit(Integer.MAX_VALUE);
            for (var t : org.bertj.io.onnx.OnnxMin.ModelProto.parseFrom(cis).getGraph().getInitializerList()) {
                if (t.getName().equals(name)) {
                    var fb = t.getRawData().asReadOnlyByteBuffer()
                            .order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
                    float[] v = new float[fb.remaining()];
                    fb.get(v);
                    return v;
                }
            }
        }
        throw new AssertionError(name + " not in the ONNX model");
    }

    @Test
    void tokenizerWorks() {
        try (BertTokenizer t = BertTokenizer.forModel(model)) {
            assertArrayEquals(new int[] {101, 7592, 2088, 102}, t.encode("Hello world").inputIds());
        }
    }
}
