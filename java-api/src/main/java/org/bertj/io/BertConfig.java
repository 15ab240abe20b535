package org.bertj.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * A BERT model configuration: the fields of a Hugging Face {@code BertConfig} {@code config.json}.
 *
 * <p>Read one with {@link #read(Path)} (or {@link #forModel(Path)} for a checkpoint folder), make one
 * with {@link #builder()}, change one with {@link #toBuilder()}, and write it back with {@link
 * #write(Path)}: the output is a {@code config.json} that transformers loads ({@code model_type}
 * {@code "bert"}, sorted keys), and fields this class does not know (e.g. {@code
 * transformers_version}, {@code use_cache}) are kept as they were read.
 *
 * <p>Required in a file: {@code vocab_size}, {@code hidden_size}, {@code num_hidden_layers}, {@code
 * num_attention_heads}, {@code intermediate_size}, {@code max_position_embeddings}, {@code
 * type_vocab_size}. Every other field takes transformers' default when absent. Supported: {@code
 * hidden_act} {@code "gelu"} (exact erf GELU) and {@code position_embedding_type} {@code "absolute"}
 * only. Labels: {@code id2label} (keys {@code "0".."n-1"}) gives {@code num_labels}; without it a
 * {@code "num_labels"} field does, else 2 ({@code LABEL_0}, {@code LABEL_1}). Every fault is a {@link
 * CheckpointException} naming the file and the field.
 */
public final class BertConfig {

    /** The {@code problem_type} values of transformers' sequence classification. */
    public enum ProblemType {
        /** One class per example, cross-entropy loss. */
        SINGLE_LABEL_CLASSIFICATION("single_label_classification"),
        /** Any number of classes per example, binary cross-entropy with logits. */
        MULTI_LABEL_CLASSIFICATION("multi_label_classification"),
        /** One real value per label, mean squared error. */
        REGRESSION("regression");

        private final String jsonName;

        ProblemType(String jsonName) {
            this.jsonName = jsonName;
        }

        /** @return the name as written in {@code config.json} */
        public String jsonName() {
            return jsonName;
        }

        /**
         * @param name a {@code problem_type} string
         * @return the matching value, or {@code null} if none matches
         */
        public static ProblemType fromJson(String name) {
            for (ProblemType p : values()) {
                if (p.jsonName.equals(name)) {
                    return p;
                }
            }
            return null;
        }
    }

    private static final ObjectMapper JSON =
            new ObjectMapper()
                    .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
                    .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    /** Fields this class reads; every other field is kept verbatim in {@link #getExtraFields()}. */
    private static final List<String> KNOWN = List.of(
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
            "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps",
            "pad_token_id", "classifier_dropout", "problem_type", "id2label", "label2id", "num_labels",
            "architectures", "position_embedding_type", "model_type");

    private final int vocabSize;
    private final int hiddenSize;
    private final int numHiddenLayers;
    private final int numAttentionHeads;
    private final int intermediateSize;
    private final String hiddenAct;
    private final double hiddenDropoutProb;
    private final double attentionProbsDropoutProb;
    private final int maxPositionEmbeddings;
    private final int typeVocabSize;
    private final double initializerRange;
    private final double layerNormEps;
    private final int padTokenId;
    private final Double classifierDropout;
    private final ProblemType problemType;
    private final List<String> labels; // id2label, index = id
    private final Map<String, Integer> label2id;
    private final List<String> architectures;
    private final String positionEmbeddingType;
    private final Map<String, JsonNode> extra;

    private BertConfig(Builder b) {
        vocabSize = b.vocabSize;
        hiddenSize = b.hiddenSize;
        numHiddenLayers = b.numHiddenLayers;
        numAttentionHeads = b.numAttentionHeads;
        intermediateSize = b.intermediateSize;
        hiddenAct = b.hiddenAct;
        hiddenDropoutProb = b.hiddenDropoutProb;
        attentionProbsDropoutProb = b.attentionProbsDropoutProb;
        maxPositionEmbeddings = b.maxPositionEmbeddings;
        typeVocabSize = b.typeVocabSize;
        initializerRange = b.initializerRange;
        layerNormEps = b.layerNormEps;
        padTokenId = b.padTokenId;
        classifierDropout = b.classifierDropout;
        problemType = b.problemType;
        labels = List.copyOf(b.labels);
        Map<String, Integer> l2i = new LinkedHashMap<>();
        if (b.label2id != null) {
            l2i.putAll(b.label2id);
        } else {
            for (int i = 0; i < labels.size(); i++) {
                l2i.put(labels.get(i), i);
            }
        }
        label2id = Collections.unmodifiableMap(l2i);
        architectures = List.copyOf(b.architectures);
        positionEmbeddingType = b.positionEmbeddingType;
        extra = Collections.unmodifiableMap(new LinkedHashMap<>(b.extra));
    }

    // ---------------------------------------------------------------- reading

    /**
     * Reads a {@code config.json}.
     *
     * @param file the file
     * @return the configuration
     * @throws CheckpointException naming the file and field, if it is not a usable BERT config
     * @throws UncheckedIOException if the file cannot be read
     */
    public static BertConfig read(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
        return parse(new Source(file, file.toString()), bytes);
    }

    /**
     * Reads {@code dir/config.json}.
     *
     * @param modelDir a Hugging Face checkpoint folder
     * @return the configuration
     */
    public static BertConfig forModel(Path modelDir) {
        return read(modelDir.resolve("config.json"));
    }

    /**
     * Parses a configuration from JSON text (errors name the source as {@code config.json}).
     *
     * @param json the JSON object
     * @return the configuration
     */
    public static BertConfig fromJson(String json) {
        return parse(new Source(null, "config.json"), json.getBytes(StandardCharsets.UTF_8));
    }

    /** Where a config came from, for messages. */
    private record Source(Path file, String name) {
        CheckpointException fail(String field, String detail) {
            String f = field == null ? null : "field '" + field + "'";
            return file != null ? new CheckpointException(file, f, detail)
                    : new CheckpointException(name, f, detail);
        }
    }

    private static BertConfig parse(Source src, byte[] bytes) {
        JsonNode root;
        try {
            root = JSON.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw src.fail(null, "not valid JSON: " + e.getOriginalMessage()
                    + " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (root == null || !root.isObject()) {
            throw src.fail(null, "must hold a JSON object, not "
                    + (root == null || root.isMissingNode() ? "nothing" : root.getNodeType()));
        }
        Builder b = new Builder();
        b.vocabSize = reqInt(src, root, "vocab_size");
        b.hiddenSize = reqInt(src, root, "hidden_size");
        b.numHiddenLayers = reqInt(src, root, "num_hidden_layers");
        b.numAttentionHeads = reqInt(src, root, "num_attention_heads");
        b.intermediateSize = reqInt(src, root, "intermediate_size");
        b.maxPositionEmbeddings = reqInt(src, root, "max_position_embeddings");
        b.typeVocabSize = reqInt(src, root, "type_vocab_size");
        b.hiddenAct = optString(src, root, "hidden_act", b.hiddenAct);
        b.hiddenDropoutProb = optDouble(src, root, "hidden_dropout_prob", b.hiddenDropoutProb);
        b.attentionProbsDropoutProb =
                optDouble(src, root, "attention_probs_dropout_prob", b.attentionProbsDropoutProb);
        b.initializerRange = optDouble(src, root, "initializer_range", b.initializerRange);
        b.layerNormEps = optDouble(src, root, "layer_norm_eps", b.layerNormEps);
        JsonNode pad = root.get("pad_token_id");
        b.padTokenId = pad != null && pad.isNull() ? -1 : optInt(src, root, "pad_token_id", b.padTokenId);
        JsonNode cd = root.get("classifier_dropout");
        b.classifierDropout = cd == null || cd.isNull() ? null : optDouble(src, root, "classifier_dropout", 0);
        JsonNode pt = root.get("problem_type");
        if (pt != null && !pt.isNull()) {
            b.problemType = ProblemType.fromJson(pt.isTextual() ? pt.asText() : "");
            if (b.problemType == null) {
                throw src.fail("problem_type", pt + " is not one of null, \"single_label_classification\","
                        + " \"multi_label_classification\", \"regression\"");
            }
        }
        b.positionEmbeddingType = optString(src, root, "position_embedding_type", b.positionEmbeddingType);
        String modelType = optString(src, root, "model_type", "bert");
        if (!modelType.equals("bert")) {
            throw src.fail("model_type", "\"" + modelType + "\" is not \"bert\"");
        }
        JsonNode arch = root.get("architectures");
        b.architectures = new ArrayList<>();
        if (arch != null && !arch.isNull()) {
            if (!arch.isArray()) {
                throw src.fail("architectures", "must be a list of strings");
            }
            for (JsonNode a : arch) {
                if (!a.isTextual()) {
                    throw src.fail("architectures", "must be a list of strings, has " + a);
                }
                b.architectures.add(a.asText());
            }
        }
        parseLabels(src, root, b);
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!KNOWN.contains(e.getKey())) {
                b.extra.put(e.getKey(), e.getValue());
            }
        }
        validate(b, src::fail);
        return new BertConfig(b);
    }

    private static void parseLabels(Source src, JsonNode root, Builder b) {
        JsonNode i2l = root.get("id2label");
        JsonNode n = root.get("num_labels");
        if (i2l != null && !i2l.isNull()) {
            if (!i2l.isObject() || i2l.isEmpty()) {
                throw src.fail("id2label", "must be a non-empty object {\"0\": label, ...}");
            }
            String[] labels = new String[i2l.size()];
            for (Iterator<Map.Entry<String, JsonNode>> it = i2l.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                int id;
                try {
                    id = Integer.parseInt(e.getKey());
                } catch (NumberFormatException ex) {
                    throw src.fail("id2label", "key \"" + e.getKey() + "\" is not an integer");
                }
                if (id < 0 || id >= labels.length || labels[id] != null) {
                    throw src.fail("id2label", "ids must be 0.." + (labels.length - 1)
                            + ", each once; found \"" + e.getKey() + "\"");
                }
                if (!e.getValue().isValueNode() || e.getValue().isNull()) {
                    throw src.fail("id2label", "label of id " + id + " must be a string");
                }
                labels[id] = e.getValue().asText();
            }
            b.labels = List.of(labels);
        } else if (n != null && !n.isNull()) {
            int k = optInt(src, root, "num_labels", 2);
            if (k < 1) {
                throw src.fail("num_labels", k + " must be at least 1");
            }
            b.labels = defaultLabels(k);
        }
        JsonNode l2i = root.get("label2id");
        if (l2i != null && !l2i.isNull() && i2l != null && !i2l.isNull()) {
            if (!l2i.isObject()) {
                throw src.fail("label2id", "must be an object {label: id, ...}");
            }
            Map<String, Integer> m = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = l2i.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getValue().isIntegralNumber() || !e.getValue().canConvertToInt()) {
                    throw src.fail("label2id", "id of \"" + e.getKey() + "\" must be an integer, not " + e.getValue());
                }
                m.put(e.getKey(), e.getValue().asInt());
            }
            b.label2id = m;
        }
    }

    private static JsonNode field(JsonNode root, String name) {
        JsonNode n = root.get(name);
        return n == null || n.isNull() ? null : n;
    }

    private static int reqInt(Source src, JsonNode root, String name) {
        if (field(root, name) == null) {
            throw src.fail(name, "required field is missing");
        }
        return optInt(src, root, name, 0);
    }

    private static int optInt(Source src, JsonNode root, String name, int dflt) {
        JsonNode n = field(root, name);
        if (n == null) {
            return dflt;
        }
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw src.fail(name, "expected an integer, found " + n);
        }
        return n.asInt();
    }

    private static double optDouble(Source src, JsonNode root, String name, double dflt) {
        JsonNode n = field(root, name);
        if (n == null) {
            return dflt;
        }
        if (!n.isNumber()) {
            throw src.fail(name, "expected a number, found " + n);
        }
        return n.asDouble();
    }

    private static String optString(Source src, JsonNode root, String name, String dflt) {
        JsonNode n = field(root, name);
        if (n == null) {
            return dflt;
        }
        if (!n.isTextual()) {
            throw src.fail(name, "expected a string, found " + n);
        }
        return n.asText();
    }

    private interface Fail {
        RuntimeException at(String field, String detail);
    }

    private static void validate(Builder b, Fail fail) {
        positive(fail, "vocab_size", b.vocabSize);
        positive(fail, "hidden_size", b.hiddenSize);
        positive(fail, "num_hidden_layers", b.numHiddenLayers);
        positive(fail, "num_attention_heads", b.numAttentionHeads);
        positive(fail, "intermediate_size", b.intermediateSize);
        positive(fail, "max_position_embeddings", b.maxPositionEmbeddings);
        positive(fail, "type_vocab_size", b.typeVocabSize);
        if (b.hiddenSize % b.numAttentionHeads != 0) {
            throw fail.at("hidden_size", b.hiddenSize + " is not a multiple of num_attention_heads ("
                    + b.numAttentionHeads + ")");
        }
        if (!"gelu".equals(b.hiddenAct)) {
            throw fail.at("hidden_act", "\"" + b.hiddenAct
                    + "\" is not supported: only \"gelu\" (the exact erf GELU) is");
        }
        if (!"absolute".equals(b.positionEmbeddingType)) {
            throw fail.at("position_embedding_type", "\"" + b.positionEmbeddingType
                    + "\" is not supported: only \"absolute\" is");
        }
        probability(fail, "hidden_dropout_prob", b.hiddenDropoutProb);
        probability(fail, "attention_probs_dropout_prob", b.attentionProbsDropoutProb);
        if (b.classifierDropout != null) {
            probability(fail, "classifier_dropout", b.classifierDropout);
        }
        if (!(b.layerNormEps > 0) || Double.isInfinite(b.layerNormEps)) {
            throw fail.at("layer_norm_eps", b.layerNormEps + " must be a positive number");
        }
        if (!(b.initializerRange >= 0) || Double.isInfinite(b.initializerRange)) {
            throw fail.at("initializer_range", b.initializerRange + " must be a non-negative number");
        }
        if (b.padTokenId < -1 || b.padTokenId >= b.vocabSize) {
            throw fail.at("pad_token_id", b.padTokenId + " is outside the vocabulary [0, " + b.vocabSize + ")");
        }
        if (b.labels.isEmpty()) {
            throw fail.at("id2label", "there must be at least one label");
        }
    }

    private static void positive(Fail fail, String field, int v) {
        if (v <= 0) {
            throw fail.at(field, v + " must be positive");
        }
    }

    private static void probability(Fail fail, String field, double p) {
        if (!(p >= 0 && p < 1)) {
            throw fail.at(field, p + " must be in [0, 1)");
        }
    }

    private static List<String> defaultLabels(int n) {
        List<String> l = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            l.add("LABEL_" + i);
        }
        return l;
    }

    // ---------------------------------------------------------------- writing

    /**
     * The configuration as a Hugging Face {@code config.json}: sorted keys, two-space indent,
     * {@code model_type} {@code "bert"}, {@code id2label} and {@code label2id} always present, and the
     * unknown fields that were read.
     *
     * @return the JSON text, ending with a newline
     */
    public String toJson() {
        Map<String, Object> m = new TreeMap<>();
        extra.forEach(m::put);
        if (!architectures.isEmpty()) {
            m.put("architectures", architectures);
        }
        m.put("attention_probs_dropout_prob", attentionProbsDropoutProb);
        m.put("classifier_dropout", classifierDropout);
        m.put("hidden_act", hiddenAct);
        m.put("hidden_dropout_prob", hiddenDropoutProb);
        m.put("hidden_size", hiddenSize);
        Map<String, String> i2l = new LinkedHashMap<>();
        for (int i = 0; i < labels.size(); i++) {
            i2l.put(Integer.toString(i), labels.get(i));
        }
        m.put("id2label", i2l);
        m.put("initializer_range", initializerRange);
        m.put("intermediate_size", intermediateSize);
        m.put("label2id", label2id);
        m.put("layer_norm_eps", layerNormEps);
        m.put("max_position_embeddings", maxPositionEmbeddings);
        m.put("model_type", "bert");
        m.put("num_attention_heads", numAttentionHeads);
        m.put("num_hidden_layers", numHiddenLayers);
        m.put("pad_token_id", padTokenId < 0 ? null : padTokenId);
        m.put("position_embedding_type", positionEmbeddingType);
        if (problemType != null) {
            m.put("problem_type", problemType.jsonName());
        }
        m.put("type_vocab_size", typeVocabSize);
        m.put("vocab_size", vocabSize);
        DefaultPrettyPrinter pp = new DefaultPrettyPrinter()
                .withSeparators(Separators.createDefaultInstance()
                        .withObjectFieldValueSpacing(Separators.Spacing.AFTER));
        pp.indentArraysWith(DefaultIndenter.SYSTEM_LINEFEED_INSTANCE.withLinefeed("\n"));
        pp.indentObjectsWith(DefaultIndenter.SYSTEM_LINEFEED_INSTANCE.withLinefeed("\n"));
        try {
            return JSON.writer(pp).writeValueAsString(m) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Writes {@link #toJson()} to a file, atomically (via {@code <file>.tmp}).
     *
     * @param file e.g. {@code dir/config.json}
     */
    public void write(Path file) {
        byte[] bytes = toJson().getBytes(StandardCharsets.UTF_8);
        AtomicFiles.write(file, tmp -> Files.write(tmp, bytes));
    }

    // ---------------------------------------------------------------- getters

    /** @return {@code vocab_size}: rows of the word embedding */
    public int getVocabSize() {
        return vocabSize;
    }

    /** @return {@code hidden_size}: the model width */
    public int getHiddenSize() {
        return hiddenSize;
    }

    /** @return {@code num_hidden_layers}: encoder layers */
    public int getNumHiddenLayers() {
        return numHiddenLayers;
    }

    /** @return {@code num_attention_heads} */
    public int getNumAttentionHeads() {
        return numAttentionHeads;
    }

    /** @return {@code hidden_size / num_attention_heads}: the width of one head */
    public int getHeadSize() {
        return hiddenSize / numAttentionHeads;
    }

    /** @return {@code intermediate_size}: the feed-forward width */
    public int getIntermediateSize() {
        return intermediateSize;
    }

    /** @return {@code hidden_act}; always {@code "gelu"} */
    public String getHiddenAct() {
        return hiddenAct;
    }

    /** @return {@code hidden_dropout_prob} */
    public double getHiddenDropoutProb() {
        return hiddenDropoutProb;
    }

    /** @return {@code attention_probs_dropout_prob} */
    public double getAttentionProbsDropoutProb() {
        return attentionProbsDropoutProb;
    }

    /** @return {@code max_position_embeddings}: the longest sequence */
    public int getMaxPositionEmbeddings() {
        return maxPositionEmbeddings;
    }

    /** @return {@code type_vocab_size}: rows of the token-type embedding */
    public int getTypeVocabSize() {
        return typeVocabSize;
    }

    /** @return {@code initializer_range}: the std of the normal initialisation */
    public double getInitializerRange() {
        return initializerRange;
    }

    /** @return {@code layer_norm_eps} */
    public double getLayerNormEps() {
        return layerNormEps;
    }

    /** @return {@code pad_token_id}, or -1 when the config says {@code null} */
    public int getPadTokenId() {
        return padTokenId;
    }

    /** @return {@code classifier_dropout}, or {@code null} (then {@code hidden_dropout_prob} applies) */
    public Double getClassifierDropout() {
        return classifierDropout;
    }

    /** @return the dropout before the classifier: {@code classifier_dropout} if set, else {@code hidden_dropout_prob} */
    public double getEffectiveClassifierDropout() {
        return classifierDropout != null ? classifierDropout : hiddenDropoutProb;
    }

    /** @return {@code problem_type} as written, or {@code null} when unset */
    public ProblemType getProblemType() {
        return problemType;
    }

    /**
     * The problem type as transformers settles it when the config leaves it unset: regression for one
     * label, else single-label classification (integer labels; multi-label must be set explicitly).
     *
     * @return the problem type, never {@code null}
     */
    public ProblemType getEffectiveProblemType() {
        if (problemType != null) {
            return problemType;
        }
        return labels.size() == 1 ? ProblemType.REGRESSION : ProblemType.SINGLE_LABEL_CLASSIFICATION;
    }

    /** @return the number of labels: the size of {@code id2label} */
    public int getNumLabels() {
        return labels.size();
    }

    /** @return {@code id2label} as a list: the label of id {@code i} at index {@code i} */
    public List<String> getLabels() {
        return labels;
    }

    /** @return {@code id2label}, ordered by id */
    public Map<Integer, String> getId2Label() {
        Map<Integer, String> m = new LinkedHashMap<>();
        for (int i = 0; i < labels.size(); i++) {
            m.put(i, labels.get(i));
        }
        return Collections.unmodifiableMap(m);
    }

    /** @return {@code label2id}, in file order (derived from {@code id2label} when absent) */
    public Map<String, Integer> getLabel2Id() {
        return label2id;
    }

    /** @return {@code architectures} (e.g. {@code ["BertForSequenceClassification"]}); may be empty */
    public List<String> getArchitectures() {
        return architectures;
    }

    /** @return {@code position_embedding_type}; always {@code "absolute"} */
    public String getPositionEmbeddingType() {
        return positionEmbeddingType;
    }

    /** @return the fields read that this class does not model, kept for {@link #toJson()} */
    public Map<String, JsonNode> getExtraFields() {
        return extra;
    }

    /** @return a builder holding this configuration, to derive a changed one */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.vocabSize = vocabSize;
        b.hiddenSize = hiddenSize;
        b.numHiddenLayers = numHiddenLayers;
        b.numAttentionHeads = numAttentionHeads;
        b.intermediateSize = intermediateSize;
        b.hiddenAct = hiddenAct;
        b.hiddenDropoutProb = hiddenDropoutProb;
        b.attentionProbsDropoutProb = attentionProbsDropoutProb;
        b.maxPositionEmbeddings = maxPositionEmbeddings;
        b.typeVocabSize = typeVocabSize;
        b.initializerRange = initializerRange;
        b.layerNormEps = layerNormEps;
        b.padTokenId = padTokenId;
        b.classifierDropout = classifierDropout;
        b.problemType = problemType;
        b.labels = new ArrayList<>(labels);
        b.label2id = new LinkedHashMap<>(label2id);
        b.architectures = new ArrayList<>(architectures);
        b.positionEmbeddingType = positionEmbeddingType;
        b.extra = new LinkedHashMap<>(extra);
        return b;
    }

    /** @return a builder for a new configuration; the five sizes must be set, the rest default */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BertConfig c && toJson().equals(c.toJson());
    }

    @Override
    public int hashCode() {
        return toJson().hashCode();
    }

    @Override
    public String toString() {
        return "BertConfig{vocab=" + vocabSize + ", hidden=" + hiddenSize + ", layers=" + numHiddenLayers
                + ", heads=" + numAttentionHeads + ", intermediate=" + intermediateSize
                + ", maxPositions=" + maxPositionEmbeddings + ", labels=" + labels + "}";
    }

    /**
     * Builds a {@link BertConfig}. {@code setX} are required ({@code vocab_size}, {@code hidden_size},
     * {@code num_hidden_layers}, {@code num_attention_heads}, {@code intermediate_size}); {@code optX}
     * default as in transformers' {@code BertConfig} ({@code max_position_embeddings} 512, {@code
     * type_vocab_size} 2, dropouts 0.1, {@code layer_norm_eps} 1e-12, {@code initializer_range} 0.02,
     * {@code pad_token_id} 0, two labels).
     */
    public static final class Builder {
        private int vocabSize = -1;
        private int hiddenSize = -1;
        private int numHiddenLayers = -1;
        private int numAttentionHeads = -1;
        private int intermediateSize = -1;
        private String hiddenAct = "gelu";
        private double hiddenDropoutProb = 0.1;
        private double attentionProbsDropoutProb = 0.1;
        private int maxPositionEmbeddings = 512;
        private int typeVocabSize = 2;
        private double initializerRange = 0.02;
        private double layerNormEps = 1e-12;
        private int padTokenId = 0;
        private Double classifierDropout;
        private ProblemType problemType;
        private List<String> labels = defaultLabels(2);
        private Map<String, Integer> label2id;
        private List<String> architectures = new ArrayList<>();
        private String positionEmbeddingType = "absolute";
        private Map<String, JsonNode> extra = new LinkedHashMap<>();

        private Builder() {}

        /**

         * @param v {@code vocab_size}

         * @return this builder

         */
        public Builder setVocabSize(int v) {
            vocabSize = v;
            return this;
        }

        /**

         * @param v {@code hidden_size}

         * @return this builder

         */
        public Builder setHiddenSize(int v) {
            hiddenSize = v;
            return this;
        }

        /**

         * @param v {@code num_hidden_layers}

         * @return this builder

         */
        public Builder setNumHiddenLayers(int v) {
            numHiddenLayers = v;
            return this;
        }

        /**

         * @param v {@code num_attention_heads}

         * @return this builder

         */
        public Builder setNumAttentionHeads(int v) {
            numAttentionHeads = v;
            return this;
        }

        /**

         * @param v {@code intermediate_size}

         * @return this builder

         */
        public Builder setIntermediateSize(int v) {
            intermediateSize = v;
            return this;
        }

        /**

         * @param v {@code hidden_act}; only {@code "gelu"} builds

         * @return this builder

         */
        public Builder optHiddenAct(String v) {
            hiddenAct = v;
            return this;
        }

        /**

         * @param v {@code hidden_dropout_prob}

         * @return this builder

         */
        public Builder optHiddenDropoutProb(double v) {
            hiddenDropoutProb = v;
            return this;
        }

        /**

         * @param v {@code attention_probs_dropout_prob}

         * @return this builder

         */
        public Builder optAttentionProbsDropoutProb(double v) {
            attentionProbsDropoutProb = v;
            return this;
        }

        /**

         * @param v {@code max_position_embeddings}

         * @return this builder

         */
        public Builder optMaxPositionEmbeddings(int v) {
            maxPositionEmbeddings = v;
            return this;
        }

        /**

         * @param v {@code type_vocab_size}

         * @return this builder

         */
        public Builder optTypeVocabSize(int v) {
            typeVocabSize = v;
            return this;
        }

        /**

         * @param v {@code initializer_range}

         * @return this builder

         */
        public Builder optInitializerRange(double v) {
            initializerRange = v;
            return this;
        }

        /**

         * @param v {@code layer_norm_eps}

         * @return this builder

         */
        public Builder optLayerNormEps(double v) {
            layerNormEps = v;
            return this;
        }

        /**

         * @param v {@code pad_token_id}, or -1 for none

         * @return this builder

         */
        public Builder optPadTokenId(int v) {
            padTokenId = v;
            return this;
        }

        /**

         * @param v {@code classifier_dropout}, or {@code null} to use {@code hidden_dropout_prob}

         * @return this builder

         */
        public Builder optClassifierDropout(Double v) {
            classifierDropout = v;
            return this;
        }

        /**

         * @param v {@code problem_type}, or {@code null}

         * @return this builder

         */
        public Builder optProblemType(ProblemType v) {
            problemType = v;
            return this;
        }

        /**
         * Sets the labels: {@code id2label} {@code i -> labels.get(i)}, {@code label2id} its inverse.
         *
         * @param v the label names, by id
         * @return this builder
         */
        public Builder optLabels(List<String> v) {
            labels = new ArrayList<>(v);
            label2id = null;
            return this;
        }

        /**
         * Sets {@code n} default labels {@code LABEL_0 .. LABEL_n-1}.
         *
         * @param n the number of labels
         * @return this builder
         */
        public Builder optNumLabels(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("num_labels " + n + " must be at least 1");
            }
            return optLabels(defaultLabels(n));
        }

        /**

         * @param v {@code architectures}, e.g. {@code List.of("BertForSequenceClassification")}

         * @return this builder

         */
        public Builder optArchitectures(List<String> v) {
            architectures = new ArrayList<>(v);
            return this;
        }

        /**

         * @param v {@code position_embedding_type}; only {@code "absolute"} builds

         * @return this builder

         */
        public Builder optPositionEmbeddingType(String v) {
            positionEmbeddingType = v;
            return this;
        }

        /**
         * Sets a field this class does not model, written as is by {@link BertConfig#toJson()}.
         *
         * @param name the JSON key (not one of the modelled fields)
         * @param value the JSON value
         * @return this builder
         */
        public Builder optExtraField(String name, JsonNode value) {
            if (KNOWN.contains(name)) {
                throw new IllegalArgumentException(name + " is a modelled field; use its setter");
            }
            extra.put(name, Objects.requireNonNull(value));
            return this;
        }

        /**
         * @return the configuration
         * @throws IllegalArgumentException if a required size is unset or a value is invalid
         */
        public BertConfig build() {
            String[] names = {"vocab_size (setVocabSize)", "hidden_size (setHiddenSize)",
                "num_hidden_layers (setNumHiddenLayers)", "num_attention_heads (setNumAttentionHeads)",
                "intermediate_size (setIntermediateSize)"};
            int[] values = {vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize};
            for (int i = 0; i < names.length; i++) {
                if (values[i] == -1) {
                    throw new IllegalArgumentException(names[i] + " is required");
                }
            }
            validate(this, (field, detail) -> new IllegalArgumentException(field + ": " + detail));
            return new BertConfig(this);
        }
    }
}
