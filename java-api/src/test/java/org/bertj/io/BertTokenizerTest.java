package org.bertj.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BertTokenizerTest {

    @TempDir static Path dir;
    static Path json;
    static BertTokenizer tok;

    @BeforeAll
    static void load() throws IOException {
        json = dir.resolve("tokenizer.json");
        try (InputStream in = BertTokenizerTest.class.getClassLoader()
                .getResourceAsStream(MiniLmConverter.TOKENIZER_RESOURCE)) {
            Files.copy(in, json);
        }
        tok = BertTokenizer.builder().setPath(json).optMaxLength(128).build();
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void singleAndPair() {
        assertEquals(101, tok.getClsId());
        assertEquals(102, tok.getSepId());
        assertEquals(0, tok.getPadId());
        assertEquals(100, tok.getUnkId());
        assertEquals(30522, tok.getVocabSize());
        Encoding e = tok.encode("Hello world");
        assertArrayEquals(new int[] {101, 7592, 2088, 102}, e.inputIds());
        assertArrayEquals(new int[] {0, 0, 0, 0}, e.tokenTypeIds());
        Encoding p = tok.encode("Hello world, this is a test.", "And a second sentence");
        assertArrayEquals(new int[] {101, 7592, 2088, 1010, 2023, 2003, 1037, 3231, 1012, 102,
            1998, 1037, 2117, 6251, 102}, p.inputIds());
        assertArrayEquals(new int[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}, p.tokenTypeIds());
        assertEquals(List.of("hello", ",", "world"), tok.tokenize("Hello, world"));
        assertEquals("hello world", tok.decode(e.inputIds()));
        // the file's own "Fixed 128" padding is off
        assertEquals(4, tok.encode("Hello world").length());
    }

    /** Texts of n single-token words. */
    private static String words(int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            sb.append(i == 0 ? "" : " ").append((char) ('a' + i));
        }
        return sb.toString();
    }

    @Test
    void pairTruncationIsLongestFirst() {
        // the cases of the tokenizers library's own test (max 7 text tokens), plus 3 special tokens
        int[][] cases = {
            {0, 0, 0, 0}, {0, 2, 0, 2}, {0, 4, 0, 4}, {0, 8, 0, 7},
            {2, 0, 2, 0}, {2, 2, 2, 2}, {2, 4, 2, 4}, {2, 8, 2, 5},
            {4, 0, 4, 0}, {4, 2, 4, 2}, {4, 4, 3, 4}, {4, 8, 3, 4},
            {8, 0, 7, 0}, {8, 2, 5, 2}, {8, 4, 4, 3}, {8, 8, 3, 4},
        };
        for (int[] c : cases) {
            Encoding e = tok.encode(words(c[0]), words(c[1]), 10);
            int n1 = 0;
            for (int t : e.tokenTypeIds()) {
                n1 += t == 0 ? 1 : 0;
            }
            int n2 = e.length() - n1;
            String what = c[0] + "+" + c[1] + ": " + e;
            assertEquals(c[2], n1 - 2, what);
            assertEquals(c[3], n2 - 1, what);
            assertEquals(101, e.inputIds()[0], what);
            assertEquals(102, e.inputIds()[n1 - 1], what);
            assertEquals(102, e.inputIds()[e.length() - 1], what);
        }
        // the kept tokens are the first ones
        Encoding e = tok.encode("a b c d e f g h", "x y", 8);
        assertEquals("a b c x y", tok.decode(e.inputIds())); // 5 text tokens: the pair fits, the long text takes the rest
        // a single text keeps its head and [SEP]
        Encoding s = tok.encode("a b c d e f g h", null, 5);
        assertArrayEquals(new int[] {101, 1037, 1038, 1039, 102}, s.inputIds());
        assertThrows(IllegalArgumentException.class, () -> tok.encode("a", "b", 2));
    }

    @Test
    void batchPadsToLongest() {
        EncodingBatch b = tok.encodeBatch(List.of("Hello world", "a b c d e f", "x"));
        assertEquals(3, b.batchSize());
        assertEquals(8, b.seqLen());
        assertArrayEquals(new int[] {101, 7592, 2088, 102, 0, 0, 0, 0}, b.inputIds(0));
        assertArrayEquals(new int[] {1, 1, 1, 1, 0, 0, 0, 0}, b.attentionMask(0));
        assertArrayEquals(new int[] {1, 1, 1, 1, 1, 1, 1, 1}, b.attentionMask(1));
        assertEquals(3, b.length(2));
        assertEquals(3 * 8, b.inputIds().length);
        assertArrayEquals(tok.encode("a b c d e f").inputIds(), b.inputIds2d()[1]);

        EncodingBatch p = tok.encodeBatch(List.of("a b", "c"), List.of("d", "e f g"), 6);
        assertEquals(6, p.seqLen());
        assertArrayEquals(new int[] {101, 1037, 1038, 102, 1040, 102}, p.inputIds(0));
        assertArrayEquals(new int[] {0, 0, 0, 0, 1, 1}, p.tokenTypeIds(0));
        assertArrayEquals(new int[] {101, 1039, 102, 1041, 1042, 102}, p.inputIds(1)); // "g" cut
        assertArrayEquals(new int[] {0, 0, 0, 1, 1, 1}, p.tokenTypeIds(1));

        try (BertTokenizer t8 = BertTokenizer.builder().setPath(json).optPadToMultipleOf(8).build()) {
            assertEquals(8, t8.encodeBatch(List.of("x")).seqLen());
        }
        // truncation to the tokenizer's maxLength (128 here)
        String longText = "word ".repeat(300);
        assertEquals(128, tok.encodeBatch(List.of(longText, "x")).seqLen());
        assertEquals(128, tok.encode(longText).length());
    }

    @Test
    void badFile() throws IOException {
        Path p = dir.resolve("bad-tokenizer.json");
        Files.writeString(p, "{\"model\": {\"type\": \"BPE\"}}");
        CheckpointException e = assertThrows(CheckpointException.class, () -> BertTokenizer.newInstance(p));
        assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("model.vocab"), e.getMessage());
    }

    @Test
    void loadingPrintsNothingInProcess() {
        PrintStream out = System.out;
        PrintStream err = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream capture = new PrintStream(buf, true, StandardCharsets.UTF_8);
        System.setOut(capture);
        System.setErr(capture);
        try (BertTokenizer t = BertTokenizer.forModel(dir)) {
            t.encodeBatch(List.of("quiet please"));
        } finally {
            System.setOut(out);
            System.setErr(err);
        }
        assertEquals("", buf.toString(StandardCharsets.UTF_8));
    }

    /** In a fresh JVM, so that first-time initialisation (SLF4J, the native library) is covered too. */
    @Test
    void loadingPrintsNothingInFreshJvm() throws Exception {
        Path java = Paths.get(System.getProperty("java.home"), "bin", "java");
        Path out = dir.resolve("quiet.out");
        Path err = dir.resolve("quiet.err");
        Process p = new ProcessBuilder(java.toString(), "-cp", System.getProperty("java.class.path"),
                QuietMain.class.getName(), json.toString())
                .redirectOutput(out.toFile())
                .redirectError(err.toFile())
                .start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "subprocess hung");
        assertEquals(0, p.exitValue(), Files.readString(err));
        assertEquals("", Files.readString(out));
        assertEquals("", Files.readString(err));
    }

    /** Loads a tokenizer and encodes; must print nothing. */
    public static final class QuietMain {
        private QuietMain() {}

        /**
         * @param args the tokenizer.json path
         */
        public static void main(String[] args) {
            try (BertTokenizer t = BertTokenizer.newInstance(Paths.get(args[0]))) {
                if (t.encode("quiet", "please").length() != 5) {
                    System.exit(3);
                }
            }
        }
    }
}
