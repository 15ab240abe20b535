package org.bertj.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DatasetTest {

    @TempDir Path dir;

    private Path file(String name, String content) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, content, StandardCharsets.UTF_8);
        return p;
    }

    private static void bad(Path p, int line, String... parts) {
        DatasetException e = assertThrows(DatasetException.class, () -> Dataset.read(p));
        assertEquals(line, e.getLine(), e.getMessage());
        assertTrue(e.getMessage().contains(p.toString()), e.getMessage());
        if (line > 0) {
            assertTrue(e.getMessage().contains("line " + line + ":"), e.getMessage());
        }
        for (String s : parts) {
            assertTrue(e.getMessage().contains(s), "no '" + s + "' in: " + e.getMessage());
        }
    }

    // ---- TSV ----

    @Test
    void tsv() throws IOException {
        Path p = file("train.tsv",
                "\uFEFFsentence\tlabel\r\n"
                        + "it 's a \"charming\" film \t1\r\n"
                        + "\r\n"
                        + "a, b\t0\n"
                        + "\t1\n");
        Dataset d = Dataset.read(p);
        assertEquals(List.of("sentence", "label"), d.columns());
        assertEquals(3, d.size());
        assertEquals("it 's a \"charming\" film ", d.get(0, "sentence")); // quotes are plain, spaces kept
        assertEquals("a, b", d.texts().get(1));
        assertEquals("", d.get(2, "sentence"));
        assertArrayEquals(new int[] {1, 0, 1}, d.intColumn("label"));
        assertEquals("sentence", d.defaultTextColumn());
        assertEquals(Map.of("sentence", "a, b", "label", "0"), d.row(1));
        assertEquals(2, d.lineOf(0));
        assertEquals(4, d.lineOf(1));
    }

    @Test
    void tsvErrors() throws IOException {
        bad(file("ragged.tsv", "sentence\tlabel\ngood\t1\nno label here\n"), 3,
                "1 field", "2 columns (sentence, label)");
        bad(file("extra.tsv", "sentence\tlabel\ngood\t1\tmore\n"), 2, "3 fields");
        bad(file("empty.tsv", ""), 0, "empty file");
        bad(file("dup.tsv", "text\ttext\n"), 1, "'text' twice");
        Path p = dir.resolve("latin1.tsv");
        Files.write(p, new byte[] {'t', 'e', 'x', 't', '\n', 'c', 'a', 'f', (byte) 0xE9, '\n'});
        DatasetException e = assertThrows(DatasetException.class, () -> Dataset.read(p));
        assertTrue(e.getMessage().contains(": line 2: not valid UTF-8"), e.getMessage());
        // A bad byte far past the readers' decoding blocks still gets its own line number.
        for (String ext : new String[] {"tsv", "csv"}) {
            Path far = dir.resolve("far." + ext);
            java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
            b.writeBytes(("sentence" + ("tsv".equals(ext) ? "\t" : ",") + "label\n").getBytes(StandardCharsets.UTF_8));
            for (int i = 0; i < 5000; i++) {
                b.writeBytes(("row number " + i + ("tsv".equals(ext) ? "\t" : ",") + "1\n")
                        .getBytes(StandardCharsets.UTF_8));
            }
            b.writeBytes(new byte[] {'c', 'a', 'f', (byte) 0xE9, ("tsv".equals(ext) ? (byte) '\t' : (byte) ','), '1', '\n'});
            Files.write(far, b.toByteArray());
            DatasetException e2 = assertThrows(DatasetException.class, () -> Dataset.read(far));
            assertTrue(e2.getMessage().contains(": line 5002: not valid UTF-8"), e2.getMessage());
        }
    }

    @Test
    void sst2WhenPresent() {
        Path data = Paths.get(System.getProperty("bertj.data.dir", "../../shared/data"), "sst2", "dev.tsv");
        Assumptions.assumeTrue(Files.isRegularFile(data));
        Dataset d = Dataset.read(data);
        assertEquals(List.of("sentence", "label"), d.columns());
        assertTrue(d.size() > 800);
        for (int v : d.intColumn("label")) {
            assertTrue(v == 0 || v == 1);
        }
    }

    // ---- CSV ----

    @Test
    void csvQuoting() throws IOException {
        Path p = file("data.csv",
                "text,label,note\r\n"
                        + "plain,1,\r\n"                                   // empty last field
                        + "\"with, comma\",0,\"\"\r\n"                      // quoted comma; quoted empty
                        + "\"say \"\"hi\"\"\",1,x\n"                        // escaped quotes
                        + "\"two\nlines\",0,\"and\r\nCRLF\"\n"               // newlines inside quotes
                        + "\n"                                             // blank line skipped
                        + "5\" screen,1,bare quote\n"                      // a bare quote in an unquoted field
                        + ",,\n"                                           // all empty
                        + "last,0,no newline at end");
        Dataset d = Dataset.read(p);
        assertEquals(List.of("text", "label", "note"), d.columns());
        assertEquals(List.of("plain", "with, comma", "say \"hi\"", "two\nlines", "5\" screen", "", "last"),
                d.texts());
        assertEquals("", d.get(0, "note"));
        assertEquals("", d.get(1, "note"));
        assertEquals("and\r\nCRLF", d.get(3, "note"));
        assertEquals("no newline at end", d.get(6, "note"));
        assertArrayEquals(new int[] {2, 3, 4, 5, 9, 10, 11}, new int[] { // record 4 spans lines 5-7
            d.lineOf(0), d.lineOf(1), d.lineOf(2), d.lineOf(3), d.lineOf(4), d.lineOf(5), d.lineOf(6)});
        assertEquals("text", d.defaultTextColumn());
    }

    @Test
    void csvErrors() throws IOException {
        // the row after a two-line quoted field is on line 4
        bad(file("ragged.csv", "text,label\n\"a\nb\",1\nc\n"), 4, "1 field", "2 columns (text, label)");
        bad(file("unclosed.csv", "text,label\nok,1\n\"never closed,0\nmore,1\n"), 3, "never closed");
        bad(file("after.csv", "text,label\n\"quoted\"x,1\n"), 2, "after the closing quote");
        bad(file("empty.csv", "\n\n"), 0, "empty file");
    }

    // ---- JSONL / JSON ----

    @Test
    void jsonl() throws IOException {
        Path p = file("data.jsonl",
                "{\"text\": \"hello \\\"you\\\"\", \"label\": 1, \"score\": 0.5}\n"
                        + "\n"
                        + "{\"label\": 0, \"text\": \"line\\nbreak\", \"score\": null}\n"
                        + "{\"text\": \"nested\", \"label\": true, \"score\": [1, 2]}\n");
        Dataset d = Dataset.read(p);
        assertEquals(List.of("text", "label", "score"), d.columns());
        assertEquals(List.of("hello \"you\"", "line\nbreak", "nested"), d.texts());
        assertEquals("1", d.get(0, "label"));
        assertEquals("0.5", d.get(0, "score"));
        assertNull(d.get(1, "score"));
        assertEquals("true", d.get(2, "label"));
        assertEquals("[1,2]", d.get(2, "score"));
        assertEquals(3, d.lineOf(1));
        DatasetException e = assertThrows(DatasetException.class, () -> d.floatColumn("score"));
        assertTrue(e.getMessage().contains("line 3:") && e.getMessage().contains("column 'score'"), e.getMessage());
    }

    @Test
    void jsonlErrors() throws IOException {
        bad(file("badjson.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": }\n"), 2, "not valid JSON");
        bad(file("missing.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\"}\n"), 2, "missing column 'label'");
        bad(file("extra.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\", \"label\": 1}\n"), 2, "unexpected column 'label'");
        bad(file("array.jsonl", "{\"text\": \"a\"}\n[1]\n"), 2, "JSON object");
        bad(file("two.jsonl", "{\"text\": \"a\"} {\"text\": \"b\"}\n"), 1, "not valid JSON");
    }

    @Test
    void jsonArrayAndJsonAsLines() throws IOException {
        Dataset a = Dataset.read(file("a.json", "[\n  {\"sentence\": \"x\", \"label\": 1},\n  {\"sentence\": \"y\", \"label\": 0}\n]\n"));
        assertEquals(List.of("x", "y"), a.texts());
        assertEquals(3, a.lineOf(1));
        Dataset l = Dataset.read(file("l.json", "{\"sentence\": \"x\", \"label\": 1}\n{\"sentence\": \"y\", \"label\": 0}\n"));
        assertEquals(List.of("x", "y"), l.texts());
        bad(file("b.json", "[\n  {\"sentence\": \"x\"},\n  {\"sentence\": }\n]"), 3, "not valid JSON");
        bad(file("c.json", "[\n  {\"sentence\": \"x\"},\n  {\"other\": \"y\"}\n]"), 3, "missing column 'sentence'");
    }

    // ---- columns ----

    @Test
    void columnErrors() throws IOException {
        Dataset d = Dataset.read(file("q.tsv", "question\tanswer\tlabel\nwhy\tbecause\tx\n"));
        DatasetException e = assertThrows(DatasetException.class, d::defaultTextColumn);
        assertTrue(e.getMessage().contains("q.tsv") && e.getMessage().contains("question, answer, label"),
                e.getMessage());
        e = assertThrows(DatasetException.class, () -> d.column("sentence"));
        assertTrue(e.getMessage().contains("no column 'sentence'"), e.getMessage());
        e = assertThrows(DatasetException.class, () -> d.intColumn("label"));
        assertTrue(e.getMessage().contains("line 2:") && e.getMessage().contains("\"x\""), e.getMessage());
        DatasetException u = assertThrows(DatasetException.class, () -> Dataset.read(dir.resolve("x.parquet")));
        assertTrue(u.getMessage().contains("extension"));
    }
}
