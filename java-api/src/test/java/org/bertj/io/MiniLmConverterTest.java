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

    /**
     * The converted checkpoint, run through a plain double-precision BERT forward written here, must
     * give ONNX Runtime's last_hidden_state on the original model: proves names, transposes and config.
     */
    @Test
    void matchesOnnxRuntime() throws Exception {
        BertConfig c = BertConfig.forModel(model);
        Encoding enc;
        try (BertTokenizer t = BertTokenizer.forModel(model)) {
            enc = t.encode("The quick brown fox", "jumps over the lazy dog");
        }
        int[] ids = enc.inputIds();
        int[] types = enc.tokenTypeIds();
        int tl = ids.length;
        double[][] ours;
        try (SafetensorsReader r = SafetensorsReader.open(model.resolve("model.safetensors"))) {
            ours = referenceForward(r, c, ids, types);
        }
        float[][] ort;
        var env = ai.onnxruntime.OrtEnvironment.getEnvironment();
        byte[] bytes;
        try (InputStream in = MiniLmConverter.class.getClassLoader()
                .getResourceAsStream(MiniLmConverter.ONNX_RESOURCE)) {
            bytes = in.readAllBytes();
        }
        long[][] idsL = {java.util.Arrays.stream(ids).asLongStream().toArray()};
        long[][] typesL = {java.util.Arrays.stream(types).asLongStream().toArray()};
        long[][] maskL = {new long[tl]};
        java.util.Arrays.fill(maskL[0], 1);
        try (var session = env.createSession(bytes, new ai.onnxruntime.OrtSession.SessionOptions());
                var a = ai.onnxruntime.OnnxTensor.createTensor(env, idsL);
                var b = ai.onnxruntime.OnnxTensor.createTensor(env, maskL);
                var t = ai.onnxruntime.OnnxTensor.createTensor(env, typesL);
                var res = session.run(Map.of("input_ids", a, "attention_mask", b, "token_type_ids", t))) {
            ort = ((float[][][]) res.get(0).getValue())[0];
        }
        double num = 0;
        double den = 0;
        for (int i = 0; i < tl; i++) {
            for (int j = 0; j < c.getHiddenSize(); j++) {
                double d = ours[i][j] - ort[i][j];
                num += d * d;
                den += (double) ort[i][j] * ort[i][j];
            }
        }
        double rel = Math.sqrt(num / den);
        System.out.println("MiniLM vs ONNX Runtime: relative error " + rel);
        assertTrue(rel < 1e-4, "relative error " + rel);
    }

    /** BertModel's last_hidden_state for one unpadded sequence, in doubles. */
    private static double[][] referenceForward(SafetensorsReader r, BertConfig c, int[] ids, int[] types) {
        int tl = ids.length;
        int h = c.getHiddenSize();
        double eps = c.getLayerNormEps();
        float[] word = r.readFloats("embeddings.word_embeddings.weight");
        float[] pos = r.readFloats("embeddings.position_embeddings.weight");
        float[] typ = r.readFloats("embeddings.token_type_embeddings.weight");
        double[][] x = new double[tl][h];
        for (int i = 0; i < tl; i++) {
            for (int j = 0; j < h; j++) {
                x[i][j] = word[ids[i] * h + j] + pos[i * h + j] + typ[types[i] * h + j];
            }
        }
        x = layerNorm(x, r, "embeddings.LayerNorm", eps);
        int nh = c.getNumAttentionHeads();
        int hd = c.getHeadSize();
        for (int l = 0; l < c.getNumHiddenLayers(); l++) {
            String p = "encoder.layer." + l + ".";
            double[][] q = linear(x, r, p + "attention.self.query");
            double[][] k = linear(x, r, p + "attention.self.key");
            double[][] v = linear(x, r, p + "attention.self.value");
            double[][] ctx = new double[tl][h];
            for (int hh = 0; hh < nh; hh++) {
                for (int i = 0; i < tl; i++) {
                    double[] s = new double[tl];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < tl; j++) {
                        for (int d = 0; d < hd; d++) {
                            s[j] += q[i][hh * hd + d] * k[j][hh * hd + d];
                        }
                        s[j] /= Math.sqrt(hd);
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < tl; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int j = 0; j < tl; j++) {
                        for (int d = 0; d < hd; d++) {
                            ctx[i][hh * hd + d] += s[j] / sum * v[j][hh * hd + d];
                        }
                    }
                }
            }
            x = layerNorm(add(linear(ctx, r, p + "attention.output.dense"), x), r,
                    p + "attention.output.LayerNorm", eps);
            double[][] inter = linear(x, r, p + "intermediate.dense");
            for (double[] row : inter) {
                for (int j = 0; j < row.length; j++) {
                    row[j] = 0.5 * row[j] * (1 + erf(row[j] / Math.sqrt(2)));
                }
            }
            x = layerNorm(add(linear(inter, r, p + "output.dense"), x), r, p + "output.LayerNorm", eps);
        }
        return x;
    }

    private static double[][] linear(double[][] x, SafetensorsReader r, String name) {
        long[] shape = r.shape(name + ".weight"); // (out, in)
        int out = (int) shape[0];
        int in = (int) shape[1];
        float[] w = r.readFloats(name + ".weight");
        float[] b = r.readFloats(name + ".bias");
        double[][] y = new double[x.length][out];
        for (int i = 0; i < x.length; i++) {
            for (int o = 0; o < out; o++) {
                double s = b[o];
                for (int k = 0; k < in; k++) {
                    s += w[o * in + k] * x[i][k];
                }
                y[i][o] = s;
            }
        }
        return y;
    }

    private static double[][] add(double[][] a, double[][] b) {
        for (int i = 0; i < a.length; i++) {
            for (int j = 0; j < a[i].length; j++) {
                a[i][j] += b[i][j];
            }
        }
        return a;
    }

    private static double[][] layerNorm(double[][] x, SafetensorsReader r, String name, double eps) {
        float[] g = r.readFloats(name + ".weight");
        float[] b = r.readFloats(name + ".bias");
        double[][] y = new double[x.length][];
        for (int i = 0; i < x.length; i++) {
            double mean = 0;
            for (double v : x[i]) {
                mean += v;
            }
            mean /= x[i].length;
            double var = 0;
            for (double v : x[i]) {
                var += (v - mean) * (v - mean);
            }
            var /= x[i].length;
            y[i] = new double[x[i].length];
            for (int j = 0; j < x[i].length; j++) {
                y[i][j] = (x[i][j] - mean) / Math.sqrt(var + eps) * g[j] + b[j];
            }
        }
        return y;
    }

    /** erf from the Numerical Recipes erfc approximation (fractional error below 1.2e-7): enough here. */
    private static double erf(double z) {
        double t = 1.0 / (1.0 + 0.5 * Math.abs(z));
        // Numerical Recipes erfc (Chebyshev), fractional error < 1.2e-7
        double ans = 1 - t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196
                + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398
                + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return z >= 0 ? ans : -ans;
    }

    @Test
    void tokenizerWorks() {
        try (BertTokenizer t = BertTokenizer.forModel(model)) {
            assertArrayEquals(new int[] {101, 7592, 2088, 102}, t.encode("Hello world").inputIds());
        }
    }
}
