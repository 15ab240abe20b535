package org.bertj.io;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A BERT WordPiece tokenizer read from a Hugging Face {@code tokenizer.json}, with truncation and
 * padding done here rather than by the underlying tokenizer, so that they are what this class says.
 *
 * <p>The text is normalised and split by the Hugging Face {@code tokenizers} library (through DJL),
 * with the file's own truncation and padding switched off. This class then assembles {@code [CLS] a
 * [SEP]} or {@code [CLS] a [SEP] b [SEP]}, truncating the text tokens so that the whole fits {@code
 * maxLength} ({@code [CLS]}/{@code [SEP]} are always kept): a single text loses its tail; a pair is cut
 * longest-first exactly as the {@code tokenizers} library's {@code LongestFirst} strategy does (if the
 * shorter sequence fits in half, the longer one takes the rest; otherwise both get half, the longer one
 * the odd token). Batches are padded on the right to their longest example.
 *
 * <p>Loading prints nothing: the SLF4J "no providers" warning is silenced (by setting {@code
 * slf4j.internal.verbosity=ERROR} unless already set); DJL logs through SLF4J, so an application with
 * a logging backend still sees DJL's messages where it routes them. Instances are thread-safe; close
 * them to free the native tokenizer.
 *
 * <pre>{@code
 * try (BertTokenizer tok = BertTokenizer.forModel(modelDir)) {
 *     EncodingBatch batch = tok.encodeBatch(List.of("a film", "a long, boring film"));
 * }
 * }</pre>
 */
public final class BertTokenizer implements AutoCloseable {

    static {
        // SLF4J 2 prints "No SLF4J providers were found" to stderr when no backend is on the class path;
        // this only silences SLF4J's own reports, not any logging of an application that has a backend.
        if (System.getProperty("slf4j.internal.verbosity") == null) {
            System.setProperty("slf4j.internal.verbosity", "ERROR");
        }
        // DJL picks the tokenizer's native build by the machine's CUDA version ("cu130" on a GPU
        // machine) and downloads it when the jar lacks it (it only ships the CPU build), which
        // fails offline. Tokenization runs on the CPU anyway: ask for the bundled CPU build unless
        // the user chose otherwise (environment variable or system property RUST_FLAVOR).
        if (System.getenv("RUST_FLAVOR") == null && System.getProperty("RUST_FLAVOR") == null) {
            System.setProperty("RUST_FLAVOR", "cpu");
        }
    }

    /** Default {@code maxLength}: BERT's usual {@code max_position_embeddings}. */
    public static final int DEFAULT_MAX_LENGTH = 512;

    private final Path file;
    private final HuggingFaceTokenizer tokenizer;
    private final int maxLength;
    private final int padToMultipleOf;
    private final int clsId;
    private final int sepId;
    private final int padId;
    private final int unkId;
    private final int vocabSize;

    private BertTokenizer(Builder b) {
        this.file = b.path;
        this.maxLength = b.maxLength;
        this.padToMultipleOf = b.padToMultipleOf;
        Map<String, Integer> vocab = readVocab(b.path);
        vocabSize = vocab.values().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;
        clsId = special(vocab, b.clsToken);
        sepId = special(vocab, b.sepToken);
        padId = special(vocab, b.padToken);
        unkId = vocab.getOrDefault("[UNK]", -1);
        Map<String, String> options = new HashMap<>();
        options.put("padding", "false");
        options.put("truncation", "false");
        options.put("addSpecialTokens", "false");
        try {
            tokenizer = HuggingFaceTokenizer.newInstance(b.path, options);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + b.path, e);
        } catch (RuntimeException e) {
            Throwable root = e;
            while (root.getCause() != null && root.getCause() != root) {
                root = root.getCause();
            }
            throw new CheckpointException(b.path, null, "not a usable tokenizer: " + e.getMessage()
                + (root != e ? " (" + root + ")" : ""), e);
        }
    }

    private int special(Map<String, Integer> vocab, String token) {
        Integer id = vocab.get(token);
        if (id == null) {
            throw new CheckpointException(file, "token '" + token + "'",
                    "not in the vocabulary or added_tokens: not a BERT tokenizer?");
        }
        return id;
    }

    /** Token to id, from {@code model.vocab} and {@code added_tokens}. */
    private static Map<String, Integer> readVocab(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (JsonProcessingException e) {
            throw new CheckpointException(file, null, "not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
        if (root == null || !root.isObject()) {
            throw new CheckpointException(file, null, "must hold a JSON object");
        }
        Map<String, Integer> vocab = new HashMap<>();
        JsonNode v = root.path("model").path("vocab");
        if (!v.isObject()) {
            throw new CheckpointException(file, "field 'model.vocab'",
                    "missing or not an object: only WordPiece (BERT) tokenizers are supported");
        }
        v.fields().forEachRemaining(e -> vocab.put(e.getKey(), e.getValue().asInt()));
        for (JsonNode t : root.path("added_tokens")) {
            if (t.has("content") && t.has("id")) {
                vocab.put(t.get("content").asText(), t.get("id").asInt());
            }
        }
        return vocab;
    }

    /**
     * Loads a {@code tokenizer.json} with the default options ({@code maxLength} 512, no rounding of
     * the padded length).
     *
     * @param tokenizerJson the file
     * @return the tokenizer; close it when done
     * @throws CheckpointException if the file is not a BERT tokenizer
     */
    public static BertTokenizer newInstance(Path tokenizerJson) {
        return builder().setPath(tokenizerJson).build();
    }

    /**
     * Loads {@code modelDir/tokenizer.json}.
     *
     * @param modelDir a Hugging Face checkpoint folder
     * @return the tokenizer
     */
    public static BertTokenizer forModel(Path modelDir) {
        return newInstance(modelDir.resolve("tokenizer.json"));
    }

    /** @return a builder: {@code setPath} is required */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Tokenizes one text: {@code [CLS] text [SEP]}, truncated to {@link #getMaxLength()}.
     *
     * @param text the text
     * @return the encoding, unpadded
     */
    public Encoding encode(String text) {
        return encode(text, null, maxLength);
    }

    /**
     * Tokenizes a pair: {@code [CLS] text [SEP] pair [SEP]}, truncated longest-first to {@link
     * #getMaxLength()}.
     *
     * @param text the first segment
     * @param pair the second segment, or {@code null} for a single text
     * @return the encoding, unpadded
     */
    public Encoding encode(String text, String pair) {
        return encode(text, pair, maxLength);
    }

    /**
     * Tokenizes a text or a pair, truncated to {@code maxLength} tokens in all.
     *
     * @param text the first segment
     * @param pair the second segment, or {@code null}
     * @param maxLength the most tokens, special tokens included (at least 2, or 3 for a pair)
     * @return the encoding, unpadded
     */
    public Encoding encode(String text, String pair, int maxLength) {
        int[] a = ids(tokenizer.encode(text, false, false));
        int[] b = pair == null ? null : ids(tokenizer.encode(pair, false, false));
        return assemble(a, b, maxLength);
    }

    /**
     * Tokenizes texts and pads them into a batch, truncated to {@link #getMaxLength()}.
     *
     * @param texts the texts
     * @return the batch
     */
    public EncodingBatch encodeBatch(List<String> texts) {
        return encodeBatch(texts, null, maxLength);
    }

    /**
     * Tokenizes text pairs and pads them into a batch, truncated to {@link #getMaxLength()}.
     *
     * @param texts the first segments
     * @param pairs the second segments, as many as {@code texts}, or {@code null} for single texts
     * @return the batch
     */
    public EncodingBatch encodeBatch(List<String> texts, List<String> pairs) {
        return encodeBatch(texts, pairs, maxLength);
    }

    /**
     * Tokenizes texts (or pairs), truncates each to {@code maxLength}, and pads them on the right to
     * the longest of the batch (rounded up to the builder's {@code padToMultipleOf}).
     *
     * @param texts the first segments (at least one)
     * @param pairs the second segments, or {@code null}
     * @param maxLength the most tokens per example, special tokens included
     * @return the batch
     */
    public EncodingBatch encodeBatch(List<String> texts, List<String> pairs, int maxLength) {
        return EncodingBatch.pad(encodeAll(texts, pairs, maxLength), padId, padToMultipleOf);
    }

    /**
     * Tokenizes texts (or pairs) without padding them, e.g. to sort by length before batching.
     *
     * @param texts the first segments
     * @param pairs the second segments, or {@code null}
     * @param maxLength the most tokens per example, special tokens included
     * @return one encoding per text
     */
    public List<Encoding> encodeAll(List<String> texts, List<String> pairs, int maxLength) {
        if (texts.isEmpty()) {
            throw new IllegalArgumentException("no texts to encode");
        }
        if (pairs != null && pairs.size() != texts.size()) {
            throw new IllegalArgumentException(
                    texts.size() + " texts but " + pairs.size() + " pairs");
        }
        List<String> all = new ArrayList<>(texts);
        if (pairs != null) {
            all.addAll(pairs);
        }
        ai.djl.huggingface.tokenizers.Encoding[] enc = tokenizer.batchEncode(all, false, false);
        List<Encoding> out = new ArrayList<>(texts.size());
        for (int i = 0; i < texts.size(); i++) {
            int[] a = ids(enc[i]);
            int[] b = pairs == null ? null : ids(enc[texts.size() + i]);
            out.add(assemble(a, b, maxLength));
        }
        return out;
    }

    /**
     * Splits a text into WordPiece tokens, without special tokens or truncation (for inspection).
     *
     * @param text the text
     * @return the tokens, e.g. {@code [hello, ",", world]}
     */
    public List<String> tokenize(String text) {
        return Arrays.asList(tokenizer.encode(text, false, false).getTokens());
    }

    /**
     * Turns ids back into text, skipping special tokens.
     *
     * @param ids token ids
     * @return the text
     */
    public String decode(int[] ids) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            l[i] = ids[i];
        }
        return tokenizer.decode(l, true);
    }

    private static int[] ids(ai.djl.huggingface.tokenizers.Encoding e) {
        long[] l = e.getIds();
        int[] r = new int[l.length];
        for (int i = 0; i < l.length; i++) {
            r[i] = (int) l[i];
        }
        return r;
    }

    /** {@code [CLS] a [SEP] (b [SEP])}, truncated as the class doc says. */
    private Encoding assemble(int[] a, int[] b, int maxLength) {
        int specials = b == null ? 2 : 3;
        if (maxLength < specials) {
            throw new IllegalArgumentException("maxLength " + maxLength + " leaves no room for the "
                    + specials + " special tokens");
        }
        int room = maxLength - specials;
        int na = a.length;
        int nb = b == null ? 0 : b.length;
        if (na + nb > room) {
            if (b == null) {
                na = room;
            } else {
                // tokenizers' LongestFirst: n1 is the shorter, n2 the longer
                boolean swap = na > nb;
                int n1 = swap ? nb : na;
                int n2;
                if (n1 > room) {
                    n2 = n1;
                } else {
                    n2 = Math.max(n1, room - n1);
                }
                if (n1 + n2 > room) {
                    n1 = room / 2;
                    n2 = n1 + room % 2;
                }
                na = Math.min(a.length, swap ? n2 : n1);
                nb = Math.min(b.length, swap ? n1 : n2);
            }
        }
        int len = specials + na + nb;
        int[] ids = new int[len];
        int[] types = new int[len];
        int p = 0;
        ids[p++] = clsId;
        System.arraycopy(a, 0, ids, p, na);
        p += na;
        ids[p++] = sepId;
        if (b != null) {
            int start = p;
            System.arraycopy(b, 0, ids, p, nb);
            p += nb;
            ids[p++] = sepId;
            Arrays.fill(types, start, p, 1);
        }
        return new Encoding(ids, types);
    }

    /** @return the {@code tokenizer.json} this tokenizer was read from */
    public Path getPath() {
        return file;
    }

    /** @return the default most tokens per example, special tokens included */
    public int getMaxLength() {
        return maxLength;
    }

    /** @return the id of {@code [CLS]} */
    public int getClsId() {
        return clsId;
    }

    /** @return the id of {@code [SEP]} */
    public int getSepId() {
        return sepId;
    }

    /** @return the id of {@code [PAD]} */
    public int getPadId() {
        return padId;
    }

    /** @return the id of {@code [UNK]}, or -1 if the vocabulary has none */
    public int getUnkId() {
        return unkId;
    }

    /** @return one more than the largest token id: the rows a word embedding needs */
    public int getVocabSize() {
        return vocabSize;
    }

    /** Frees the native tokenizer. */
    @Override
    public void close() {
        tokenizer.close();
    }

    /** Builds a {@link BertTokenizer}: {@code setPath} required, the rest optional. */
    public static final class Builder {
        private Path path;
        private int maxLength = DEFAULT_MAX_LENGTH;
        private int padToMultipleOf = 1;
        private String clsToken = "[CLS]";
        private String sepToken = "[SEP]";
        private String padToken = "[PAD]";

        private Builder() {}

        /**

         * @param v the {@code tokenizer.json} file

         * @return this builder

         */
        public Builder setPath(Path v) {
            path = v;
            return this;
        }

        /**

         * @param v the default most tokens per example, special tokens included (default 512)

         * @return this builder

         */
        public Builder optMaxLength(int v) {
            if (v < 3) {
                throw new IllegalArgumentException("maxLength " + v + " must be at least 3");
            }
            maxLength = v;
            return this;
        }

        /**

         * @param v round the padded length of a batch up to a multiple of this (default 1)

         * @return this builder

         */
        public Builder optPadToMultipleOf(int v) {
            if (v < 1) {
                throw new IllegalArgumentException("padToMultipleOf must be at least 1");
            }
            padToMultipleOf = v;
            return this;
        }

        /**
         * Overrides the special tokens' text (defaults {@code [CLS]}, {@code [SEP]}, {@code [PAD]}).
         *
         * @param cls the classification token
         * @param sep the separator token
         * @param pad the padding token
         * @return this builder
         */
        public Builder optSpecialTokens(String cls, String sep, String pad) {
            clsToken = cls;
            sepToken = sep;
            padToken = pad;
            return this;
        }

        /**
         * @return the tokenizer; close it when done
         * @throws CheckpointException if the file is not a BERT tokenizer
         */
        public BertTokenizer build() {
            if (path == null) {
                throw new IllegalArgumentException("setPath(tokenizer.json) is required");
            }
            return new BertTokenizer(this);
        }
    }
}
