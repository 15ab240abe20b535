package org.bertj.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.bertj.io.CheckpointException;

/**
 * The part of a Hugging Face BERT {@code config.json} the model needs, validated.
 *
 * @param vocabSize vocab_size
 * @param hiddenSize hidden_size (C)
 * @param numHiddenLayers num_hidden_layers
 * @param numAttentionHeads num_attention_heads (divides hidden_size)
 * @param intermediateSize intermediate_size
 * @param maxPositionEmbeddings max_position_embeddings
 * @param typeVocabSize type_vocab_size
 * @param layerNormEps layer_norm_eps
 * @param hiddenDropoutProb hidden_dropout_prob
 * @param attentionProbsDropoutProb attention_probs_dropout_prob
 * @param classifierDropout classifier_dropout, or null (then hidden_dropout_prob is used)
 * @param initializerRange initializer_range (std of the normal initialisation)
 * @param numLabels num_labels (from id2label when absent, as transformers; default 2)
 * @param problemType problem_type, or null (decided from the labels)
 * @param padTokenId pad_token_id (its word embedding row is zeroed by fresh initialisation)
 */
public record ModelConfig(int vocabSize, int hiddenSize, int numHiddenLayers,
    int numAttentionHeads, int intermediateSize, int maxPositionEmbeddings, int typeVocabSize,
    double layerNormEps, double hiddenDropoutProb, double attentionProbsDropoutProb,
    Double classifierDropout, double initializerRange, int numLabels, ProblemType problemType,
    int padTokenId) {

  /** Validates sizes and probabilities. */
  public ModelConfig {
    positive("vocab_size", vocabSize);
    positive("hidden_size", hiddenSize);
    positive("num_hidden_layers", numHiddenLayers);
    positive("num_attention_heads", numAttentionHeads);
    positive("intermediate_size", intermediateSize);
    positive("max_position_embeddings", maxPositionEmbeddings);
    positive("type_vocab_size", typeVocabSize);
    positive("num_labels", numLabels);
    if (hiddenSize % numAttentionHeads != 0) {
      throw new IllegalArgumentException("hidden_size " + hiddenSize
          + " is not a multiple of num_attention_heads " + numAttentionHeads);
    }
    if (!(layerNormEps >= 0 && Double.isFinite(layerNormEps))) {
      throw new IllegalArgumentException("layer_norm_eps must be finite and >= 0, got "
          + layerNormEps);
    }
    probability("hidden_dropout_prob", hiddenDropoutProb);
    probability("attention_probs_dropout_prob", attentionProbsDropoutProb);
    if (classifierDropout != null) {
      probability("classifier_dropout", classifierDropout);
    }
    if (!(initializerRange >= 0 && Double.isFinite(initializerRange))) {
      throw new IllegalArgumentException("initializer_range must be >= 0, got " + initializerRange);
    }
  }

  private static void positive(String name, int v) {
    if (v <= 0) {
      throw new IllegalArgumentException(name + " must be > 0, got " + v);
    }
  }

  private static void probability(String name, double p) {
    if (!(p >= 0 && p < 1)) {
      throw new IllegalArgumentException(name + " must be in [0, 1), got " + p);
    }
  }

  /** Head size D = hidden_size / num_attention_heads. */
  public int headSize() {
    return hiddenSize / numAttentionHeads;
  }

  /** The dropout before the classifier: classifier_dropout, else hidden_dropout_prob. */
  public double effectiveClassifierDropout() {
    return classifierDropout != null ? classifierDropout : hiddenDropoutProb;
  }

  /** A copy with another num_labels (and problem type). */
  public ModelConfig withLabels(int numLabels, ProblemType problemType) {
    return new ModelConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads,
        intermediateSize, maxPositionEmbeddings, typeVocabSize, layerNormEps, hiddenDropoutProb,
        attentionProbsDropoutProb, classifierDropout, initializerRange, numLabels, problemType,
        padTokenId);
  }

  /** A copy with other dropout probabilities (classifierDropout may be null). */
  public ModelConfig withDropout(double hidden, double attention, Double classifier) {
    return new ModelConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads,
        intermediateSize, maxPositionEmbeddings, typeVocabSize, layerNormEps, hidden, attention,
        classifier, initializerRange, numLabels, problemType, padTokenId);
  }

  /**
   * Reads a Hugging Face {@code config.json}. Requires {@code hidden_act} "gelu" (exact) and
   * the BERT sizes; defaults follow transformers' BertConfig.
   *
   * @throws CheckpointException naming the file and field when it cannot be used
   */
  public static ModelConfig read(Path configJson) {
    JsonNode root;
    try {
      root = new ObjectMapper().readTree(Files.readAllBytes(configJson));
    } catch (IOException e) {
      throw new CheckpointException(configJson, null, "cannot read: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new CheckpointException(configJson, null, "not a JSON object");
    }
    try {
      String act = str(root, "hidden_act", "gelu");
      if (!act.equals("gelu")) {
        throw new CheckpointException(configJson, "field 'hidden_act'",
            "'" + act + "' is not supported (only exact \"gelu\")");
      }
      int numLabels;
      if (root.hasNonNull("num_labels")) {
        numLabels = integer(root, "num_labels", 2);
      } else if (root.has("id2label") && root.get("id2label").isObject()) {
        numLabels = root.get("id2label").size();
      } else {
        numLabels = 2;
      }
      JsonNode cd = root.get("classifier_dropout");
      return new ModelConfig(integer(root, "vocab_size", 30522), integer(root, "hidden_size", 768),
          integer(root, "num_hidden_layers", 12), integer(root, "num_attention_heads", 12),
          integer(root, "intermediate_size", 3072),
          integer(root, "max_position_embeddings", 512), integer(root, "type_vocab_size", 2),
          dbl(root, "layer_norm_eps", 1e-12), dbl(root, "hidden_dropout_prob", 0.1),
          dbl(root, "attention_probs_dropout_prob", 0.1),
          cd == null || cd.isNull() ? null : dbl(root, "classifier_dropout", 0),
          dbl(root, "initializer_range", 0.02), numLabels,
          ProblemType.fromHf(root.hasNonNull("problem_type") ? str(root, "problem_type", null)
              : null),
          integer(root, "pad_token_id", 0));
    } catch (IllegalArgumentException e) {
      throw new CheckpointException(configJson, null, e.getMessage(), e);
    }
  }

  private static int integer(JsonNode root, String f, int dflt) {
    JsonNode n = root.get(f);
    if (n == null || n.isNull()) {
      return dflt;
    }
    if (!n.canConvertToInt() || !n.isIntegralNumber()) {
      throw new IllegalArgumentException("field '" + f + "' must be an integer, got " + n);
    }
    return n.intValue();
  }

  private static double dbl(JsonNode root, String f, double dflt) {
    JsonNode n = root.get(f);
    if (n == null || n.isNull()) {
      return dflt;
    }
    if (!n.isNumber()) {
      throw new IllegalArgumentException("field '" + f + "' must be a number, got " + n);
    }
    return n.doubleValue();
  }

  private static String str(JsonNode root, String f, String dflt) {
    JsonNode n = root.get(f);
    if (n == null || n.isNull()) {
      return dflt;
    }
    if (!n.isTextual()) {
      throw new IllegalArgumentException("field '" + f + "' must be a string, got " + n);
    }
    return n.textValue();
  }

  /** This configuration as a transformers-style {@code config.json} object. */
  public ObjectNode toJson() {
    ObjectNode o = new ObjectMapper().createObjectNode();
    o.put("model_type", "bert");
    o.putArray("architectures").add("BertForSequenceClassification");
    o.put("vocab_size", vocabSize);
    o.put("hidden_size", hiddenSize);
    o.put("num_hidden_layers", numHiddenLayers);
    o.put("num_attention_heads", numAttentionHeads);
    o.put("intermediate_size", intermediateSize);
    o.put("hidden_act", "gelu");
    o.put("max_position_embeddings", maxPositionEmbeddings);
    o.put("type_vocab_size", typeVocabSize);
    o.put("layer_norm_eps", layerNormEps);
    o.put("hidden_dropout_prob", hiddenDropoutProb);
    o.put("attention_probs_dropout_prob", attentionProbsDropoutProb);
    if (classifierDropout == null) {
      o.putNull("classifier_dropout");
    } else {
      o.put("classifier_dropout", classifierDropout);
    }
    o.put("initializer_range", initializerRange);
    o.put("pad_token_id", padTokenId);
    ObjectNode id2label = o.putObject("id2label");
    ObjectNode label2id = o.putObject("label2id");
    for (int i = 0; i < numLabels; i++) {
      id2label.put(Integer.toString(i), "LABEL_" + i);
      label2id.put("LABEL_" + i, i);
    }
    if (problemType != null) {
      o.put("problem_type", problemType.hfName());
    } else {
      o.putNull("problem_type");
    }
    return o;
  }
}
