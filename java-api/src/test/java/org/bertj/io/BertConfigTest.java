package org.bertj.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BertConfigTest {

    @TempDir Path dir;

    /** bert-base-uncased's config.json, fine-tuned for SST-2, plus a field we don't model. */
    static final String BASE = """
            {
              "architectures": ["BertForSequenceClassification"],
              "attention_probs_dropout_prob": 0.1,
              "classifier_dropout": null,
              "gradient_checkpointing": false,
              "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1,
              "hidden_size": 768,
              "id2label": {"0": "negative", "1": "positive"},
              "initializer_range": 0.02,
              "intermediate_size": 3072,
              "label2id": {"negative": 0, "positive": 1},
              "layer_norm_eps": 1e-12,
              "max_position_embeddings": 512,
              "model_type": "bert",
              "num_attention_heads": 12,
              "num_hidden_layers": 12,
              "pad_token_id": 0,
              "position_embedding_type": "absolute",
              "problem_type": "single_label_classification",
              "transformers_version": "4.40.0",
              "type_vocab_size": 2,
              "use_cache": true,
              "vocab_size": 30522
            }
            """;

    private Path file(String name, String json) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, json);
        return p;
    }

    private CheckpointException bad(String json, String... parts) throws IOException {
        Path p = file("config.json", json);
        CheckpointException e = assertThrows(CheckpointException.class, () -> BertConfig.read(p));
        assertTrue(e.getMessage().contains(p.toString()), "no file in: " + e.getMessage());
        for (String s : parts) {
            assertTrue(e.getMessage().contains(s), "no '" + s + "' in: " + e.getMessage());
        }
        return e;
    }

    private static String with(String json, String field, String value) throws IOException {
        ObjectMapper m = new ObjectMapper();
        ObjectNode o = (ObjectNode) m.readTree(json);
        if (value == null) {
            o.remove(field);
        } else {
            o.set(field, m.readTree(value));
        }
        return m.writeValueAsString(o);
    }

    @Test
    void readsEveryField() throws IOException {
        BertConfig c = BertConfig.read(file("config.json", BASE));
        assertEquals(30522, c.getVocabSize());
        assertEquals(768, c.getHiddenSize());
        assertEquals(12, c.getNumHiddenLayers());
        assertEquals(12, c.getNumAttentionHeads());
        assertEquals(64, c.getHeadSize());
        assertEquals(3072, c.getIntermediateSize());
        assertEquals("gelu", c.getHiddenAct());
        assertEquals(0.1, c.getHiddenDropoutProb());
        assertEquals(0.1, c.getAttentionProbsDropoutProb());
        assertEquals(512, c.getMaxPositionEmbeddings());
        assertEquals(2, c.getTypeVocabSize());
        assertEquals(0.02, c.getInitializerRange());
        assertEquals(1e-12, c.getLayerNormEps());
        assertEquals(0, c.getPadTokenId());
        assertNull(c.getClassifierDropout());
        assertEquals(0.1, c.getEffectiveClassifierDropout());
        assertEquals(BertConfig.ProblemType.SINGLE_LABEL_CLASSIFICATION, c.getProblemType());
        assertEquals(List.of("negative", "positive"), c.getLabels());
        assertEquals(Map.of(0, "negative", 1, "positive"), c.getId2Label());
        assertEquals(Map.of("negative", 0, "positive", 1), c.getLabel2Id());
        assertEquals(2, c.getNumLabels());
        assertEquals(List.of("BertForSequenceClassification"), c.getArchitectures());
        assertEquals("absolute", c.getPositionEmbeddingType());
        assertEquals("4.40.0", c.getExtraFields().get("transformers_version").asText());
    }

    @Test
    void roundTripKeepsUnknownFieldsAndIsHuggingFaceShaped() throws IOException {
        BertConfig c = BertConfig.read(file("config.json", BASE));
        Path out = dir.resolve("out/config.json");
        c.write(out);
        assertFalse(Files.exists(dir.resolve("out/config.json.tmp")));
        BertConfig back = BertConfig.read(out);
        assertEquals(c, back);
        JsonNode j = new ObjectMapper().readTree(Files.readString(out));
        assertEquals("bert", j.get("model_type").asText());
        assertEquals("4.40.0", j.get("transformers_version").asText());
        assertFalse(j.get("use_cache").isNull());
        assertTrue(j.get("classifier_dropout").isNull());
        assertEquals("positive", j.get("id2label").get("1").asText());
        assertEquals(1, j.get("label2id").get("positive").asInt());
        assertFalse(j.has("num_labels"));
        // keys sorted, as transformers writes them
        List<String> keys = new java.util.ArrayList<>();
        j.fieldNames().forEachRemaining(keys::add);
        List<String> sorted = new java.util.ArrayList<>(keys);
        java.util.Collections.sort(sorted);
        assertEquals(sorted, keys);
        assertTrue(Files.readString(out).contains("\"hidden_size\": 768"));
    }

    @Test
    void defaultsAndNumLabels() throws IOException {
        String min = "{\"vocab_size\": 100, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
                + " \"intermediate_size\": 16, \"max_position_embeddings\": 32, \"type_vocab_size\": 2}";
        BertConfig c = BertConfig.read(file("min.json", min));
        assertEquals(2, c.getNumLabels());
        assertEquals(List.of("LABEL_0", "LABEL_1"), c.getLabels());
        assertEquals(1e-12, c.getLayerNormEps());
        assertNull(c.getProblemType());
        assertEquals(BertConfig.ProblemType.SINGLE_LABEL_CLASSIFICATION, c.getEffectiveProblemType());
        BertConfig five = BertConfig.read(file("five.json", with(min, "num_labels", "5")));
        assertEquals(5, five.getNumLabels());
        assertEquals("LABEL_4", five.getLabels().get(4));
        assertEquals(4, five.getLabel2Id().get("LABEL_4"));
        BertConfig one = BertConfig.read(file("one.json", with(min, "num_labels", "1")));
        assertEquals(BertConfig.ProblemType.REGRESSION, one.getEffectiveProblemType());
        // id2label wins over num_labels, as in transformers
        BertConfig three = BertConfig.read(file("three.json",
                with(with(min, "num_labels", "2"), "id2label", "{\"0\":\"a\",\"1\":\"b\",\"2\":\"c\"}")));
        assertEquals(List.of("a", "b", "c"), three.getLabels());
        assertEquals(Map.of("a", 0, "b", 1, "c", 2), three.getLabel2Id());
        // pad_token_id null
        assertEquals(-1, BertConfig.read(file("nopad.json", with(min, "pad_token_id", "null"))).getPadTokenId());
    }

    @Test
    void builder() {
        BertConfig c = BertConfig.builder()
                .setVocabSize(512).setHiddenSize(64).setNumHiddenLayers(2).setNumAttentionHeads(4)
                .setIntermediateSize(256).optMaxPositionEmbeddings(64).optNumLabels(3)
                .optHiddenDropoutProb(0).optAttentionProbsDropoutProb(0)
                .optProblemType(BertConfig.ProblemType.MULTI_LABEL_CLASSIFICATION)
                .build();
        assertEquals(3, c.getNumLabels());
        assertEquals(16, c.getHeadSize());
        BertConfig back = BertConfig.fromJson(c.toJson());
        assertEquals(c, back);
        assertEquals(BertConfig.ProblemType.MULTI_LABEL_CLASSIFICATION, back.getProblemType());
        BertConfig relabelled = c.toBuilder().optLabels(List.of("neg", "pos")).build();
        assertEquals(Map.of("neg", 0, "pos", 1), relabelled.getLabel2Id());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BertConfig.builder().setVocabSize(1).build());
        assertTrue(e.getMessage().contains("hidden_size"));
        e = assertThrows(IllegalArgumentException.class, () -> c.toBuilder().setNumAttentionHeads(5).build());
        assertTrue(e.getMessage().contains("hidden_size"), e.getMessage());
    }

    @Test
    void readsGoldenConfigWhenPresent() {
        Path golden = Paths.get(System.getProperty("bertj.golden.dir", "../../shared/golden"), "tiny-bert");
        Assumptions.assumeTrue(Files.isDirectory(golden));
        BertConfig c = BertConfig.forModel(golden);
        assertEquals(64, c.getHiddenSize());
        assertEquals(3, c.getNumLabels());
        assertEquals(0.0, c.getHiddenDropoutProb());
        assertTrue(c.getExtraFields().containsKey("tie_word_embeddings"));
    }

    // ---- errors name the file and the field ----

    @Test
    void brokenJson() throws IOException {
        bad("{\"vocab_size\": 30522, \"hidden_size\": ", "not valid JSON", "line");
        bad("[1, 2]", "JSON object");
        bad("", "JSON object");
    }

    @Test
    void missingField() throws IOException {
        bad(with(BASE, "num_attention_heads", null), "field 'num_attention_heads'", "missing");
        bad(with(BASE, "vocab_size", null), "field 'vocab_size'", "missing");
    }

    @Test
    void unsupportedHiddenAct() throws IOException {
        bad(with(BASE, "hidden_act", "\"relu\""), "field 'hidden_act'", "relu", "gelu");
        bad(with(BASE, "hidden_act", "\"gelu_new\""), "field 'hidden_act'", "gelu_new");
    }

    @Test
    void otherBadFields() throws IOException {
        bad(with(BASE, "num_attention_heads", "5"), "field 'hidden_size'", "num_attention_heads");
        bad(with(BASE, "hidden_size", "\"768\""), "field 'hidden_size'", "integer");
        bad(with(BASE, "hidden_size", "768.5"), "field 'hidden_size'", "integer");
        bad(with(BASE, "position_embedding_type", "\"relative_key\""), "field 'position_embedding_type'");
        bad(with(BASE, "problem_type", "\"ranking\""), "field 'problem_type'", "ranking");
        bad(with(BASE, "id2label", "{\"0\": \"a\", \"2\": \"b\"}"), "field 'id2label'");
        bad(with(BASE, "id2label", "{\"x\": \"a\"}"), "field 'id2label'", "\"x\"");
        bad(with(BASE, "layer_norm_eps", "-1"), "field 'layer_norm_eps'");
        bad(with(BASE, "hidden_dropout_prob", "1.5"), "field 'hidden_dropout_prob'");
        bad(with(BASE, "model_type", "\"roberta\""), "field 'model_type'");
        bad(with(BASE, "pad_token_id", "40000"), "field 'pad_token_id'");
    }
}
