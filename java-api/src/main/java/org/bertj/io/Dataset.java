package org.bertj.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectReader;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.AbstractList;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * A table of string values read from a TSV, CSV, JSON Lines or JSON file: column names and rows.
 *
 * <p>Formats, chosen by {@link #read(Path)} from the extension:
 *
 * <ul>
 *   <li>{@code .tsv}: the first line names the columns; fields are separated by tabs, with no quoting
 *       (a {@code "} is an ordinary character), as in GLUE's {@code train.tsv}.
 *   <li>{@code .csv}: RFC 4180. The first record names the columns; fields may be quoted, a quoted
 *       field may hold commas and line breaks, and {@code ""} inside it is one quote. A stray quote
 *       inside an unquoted field is kept as an ordinary character.
 *   <li>{@code .jsonl}: one JSON object per line; the first object's keys are the columns, and every
 *       object must have the same keys. Numbers and booleans become their JSON text, {@code null}
 *       stays {@code null}, nested values become their JSON text.
 *   <li>{@code .json}: a JSON array of such objects, or (as Hugging Face {@code datasets} writes
 *       them) JSON Lines.
 * </ul>
 *
 * <p>Blank lines are skipped; a UTF-8 byte-order mark is ignored; line ends may be {@code \n} or
 * {@code \r\n}. A row with the wrong number of fields, a missing column, bad JSON or bad UTF-8 is a
 * {@link DatasetException} naming the file and the line.
 */
public final class Dataset {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectReader JSON_LINE =
            JSON.reader().with(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final Path file;
    private final List<String> columns;
    private final Map<String, Integer> index;
    private final List<String[]> rows;
    private final int[] lines;

    private Dataset(Path file, List<String> columns, List<String[]> rows, int[] lines) {
        this.file = file;
        this.columns = List.copyOf(columns);
        this.index = new LinkedHashMap<>();
        for (int i = 0; i < columns.size(); i++) {
            index.put(columns.get(i), i);
        }
        this.rows = rows;
        this.lines = lines;
    }

    /**
     * Reads a dataset, choosing the format by extension ({@code .tsv}, {@code .csv}, {@code .jsonl},
     * {@code .json}).
     *
     * @param file the file
     * @return the dataset
     * @throws DatasetException if the extension is unknown or the file is malformed
     */
    public static Dataset read(Path file) {
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (name.endsWith(".tsv")) {
            return readTsv(file);
        } else if (name.endsWith(".csv")) {
            return readCsv(file);
        } else if (name.endsWith(".jsonl")) {
            return readJsonl(file);
        } else if (name.endsWith(".json")) {
            return readJson(file);
        }
        throw new DatasetException(file, 0, "unknown extension: expected .tsv, .csv, .jsonl or .json");
    }

    // ------------------------------------------------------------------ TSV

    /**
     * Reads tab-separated values (header line, no quoting).
     *
     * @param file the file
     * @return the dataset
     */
    public static Dataset readTsv(Path file) {
        try (BufferedReader r = Files.newBufferedReader(file)) {
            List<String> columns = null;
            List<String[]> rows = new ArrayList<>();
            List<Integer> lines = new ArrayList<>();
            int lineNo = 0;
            String line;
            while ((line = readLine(file, r, lineNo + 1)) != null) {
                lineNo++;
                if (lineNo == 1 && line.startsWith("\uFEFF")) {
                    line = line.substring(1);
                }
                if (line.isEmpty()) {
                    continue;
                }
                String[] fields = line.split("\t", -1);
                if (columns == null) {
                    columns = header(file, lineNo, fields);
                    continue;
                }
                if (fields.length != columns.size()) {
                    throw ragged(file, lineNo, fields.length, columns);
                }
                rows.add(fields);
                lines.add(lineNo);
            }
            if (columns == null) {
                throw new DatasetException(file, 0, "empty file: no header line naming the columns");
            }
            return new Dataset(file, columns, rows, toArray(lines));
        } catch (IOException e) {
            throw io(file, e);
        }
    }

    /**
     * The 1-based line of the first byte that is not valid UTF-8 (0 if none is found). The
     * readers decode ahead in blocks, so their own position does not say where the bad byte is.
     */
    static int utf8ErrorLine(Path file) {
        java.nio.charset.CharsetDecoder dec = java.nio.charset.StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
            .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT);
        java.nio.ByteBuffer in = java.nio.ByteBuffer.allocate(1 << 16);
        java.nio.CharBuffer out = java.nio.CharBuffer.allocate(1 << 16);
        int line = 1;
        try (java.io.InputStream is = Files.newInputStream(file)) {
            boolean eof = false;
            while (true) {
                int n = eof ? -1 : is.read(in.array(), in.position(), in.remaining());
                if (n < 0) {
                    eof = true;
                } else {
                    in.position(in.position() + n);
                }
                in.flip();
                int start = in.position();
                java.nio.charset.CoderResult cr = dec.decode(in, out, eof);
                for (int i = start; i < in.position(); i++) {
                    if (in.get(i) == '\n') {
                        line++;
                    }
                }
                if (cr.isError()) {
                    return line;
                }
                out.clear();
                in.compact();
                if (eof && in.position() == 0) {
                    return 0;
                }
            }
        } catch (IOException e) {
            return 0;
        }
    }

    private static String readLine(Path file, BufferedReader r, int lineNo) throws IOException {
        try {
            return r.readLine();
        } catch (CharacterCodingException e) {
            throw new DatasetException(file, utf8ErrorLine(file), "not valid UTF-8", e);
        }
    }

    // ------------------------------------------------------------------ CSV

    /**
     * Reads comma-separated values per RFC 4180 (header record, quoted fields).
     *
     * @param file the file
     * @return the dataset
     */
    public static Dataset readCsv(Path file) {
        try (BufferedReader r = Files.newBufferedReader(file)) {
            return new CsvParser(file, r).parse();
        } catch (CharacterCodingException e) {
            throw new DatasetException(file, utf8ErrorLine(file), "not valid UTF-8", e);
        } catch (IOException e) {
            throw io(file, e);
        }
    }

    /** A character-at-a-time RFC 4180 reader that keeps line numbers. */
    private static final class CsvParser {
        private final Path file;
        private final Reader in;
        private int line = 1;
        private int pushed = -2; // one character of look-ahead; -2 = none

        CsvParser(Path file, Reader in) {
            this.file = file;
            this.in = in;
        }

        private int next() throws IOException {
            if (pushed != -2) {
                int c = pushed;
                pushed = -2;
                return c;
            }
            try {
                return in.read();
            } catch (CharacterCodingException e) {
                throw new DatasetException(file, utf8ErrorLine(file), "not valid UTF-8", e);
            }
        }

        /** After a '\r': swallow a following '\n'. */
        private void crlf() throws IOException {
            int c = next();
            if (c != '\n') {
                pushed = c;
            }
        }

        Dataset parse() throws IOException {
            List<String> columns = null;
            List<String[]> rows = new ArrayList<>();
            List<Integer> lines = new ArrayList<>();
            int first = next();
            if (first != '\uFEFF') {
                pushed = first;
            }
            while (true) {
                int start = line;
                List<String> rec = record();
                if (rec == null) {
                    break;
                }
                if (rec.size() == 1 && rec.get(0) == null) {
                    continue; // blank line
                }
                String[] fields = rec.toArray(new String[0]);
                if (columns == null) {
                    columns = header(file, start, fields);
                    continue;
                }
                if (fields.length != columns.size()) {
                    throw ragged(file, start, fields.length, columns);
                }
                rows.add(fields);
                lines.add(start);
            }
            if (columns == null) {
                throw new DatasetException(file, 0, "empty file: no header record naming the columns");
            }
            return new Dataset(file, columns, rows, toArray(lines));
        }

        /**
         * One record; null at end of input; a single null field for a blank line.
         */
        private List<String> record() throws IOException {
            List<String> fields = new ArrayList<>();
            StringBuilder f = new StringBuilder();
            int c = next();
            if (c == -1) {
                return null;
            }
            if (c == '\n' || c == '\r') {
                if (c == '\r') {
                    crlf();
                }
                line++;
                fields.add(null);
                return fields;
            }
            while (true) {
                // start of a field, c is its first character
                if (c == '"') {
                    int quoteLine = line;
                    while (true) {
                        c = next();
                        if (c == -1) {
                            throw new DatasetException(file, quoteLine,
                                    "quoted field never closed (a \" is missing)");
                        }
                        if (c == '"') {
                            c = next();
                            if (c == '"') {
                                f.append('"');
                                continue;
                            }
                            break; // closing quote; c is the character after it
                        }
                        if (c == '\n') {
                            line++;
                        } else if (c == '\r') {
                            int d = next();
                            if (d != '\n') {
                                pushed = d;
                            } else {
                                f.append('\r');
                                c = '\n';
                            }
                            line++;
                        }
                        f.append((char) c);
                    }
                    if (c != ',' && c != '\n' && c != '\r' && c != -1) {
                        throw new DatasetException(file, line, "unexpected character '" + (char) c
                                + "' after the closing quote of field " + (fields.size() + 1)
                                + " (a quote inside a quoted field must be doubled: \"\")");
                    }
                } else {
                    while (c != ',' && c != '\n' && c != '\r' && c != -1) {
                        f.append((char) c);
                        c = next();
                    }
                }
                fields.add(f.toString());
                f.setLength(0);
                if (c == ',') {
                    c = next();
                    if (c == -1 || c == '\n' || c == '\r') {
                        fields.add(""); // trailing comma: an empty last field
                    } else {
                        continue;
                    }
                }
                if (c == '\r') {
                    crlf();
                }
                if (c == '\n' || c == '\r') {
                    line++;
                }
                return fields;
            }
        }
    }

    // ------------------------------------------------------------------ JSON

    /**
     * Reads JSON Lines: one object per line.
     *
     * @param file the file
     * @return the dataset
     */
    public static Dataset readJsonl(Path file) {
        try (BufferedReader r = Files.newBufferedReader(file)) {
            List<String> columns = null;
            List<String[]> rows = new ArrayList<>();
            List<Integer> lines = new ArrayList<>();
            int lineNo = 0;
            String line;
            while ((line = readLine(file, r, lineNo + 1)) != null) {
                lineNo++;
                if (lineNo == 1 && line.startsWith("\uFEFF")) {
                    line = line.substring(1);
                }
                if (line.isBlank()) {
                    continue;
                }
                JsonNode node;
                try {
                    node = JSON_LINE.readTree(line);
                } catch (JsonProcessingException e) {
                    throw new DatasetException(file, lineNo, "not valid JSON: " + e.getOriginalMessage(), e);
                }
                if (columns == null) {
                    columns = jsonColumns(file, lineNo, node);
                }
                rows.add(jsonRow(file, lineNo, node, columns));
                lines.add(lineNo);
            }
            if (columns == null) {
                throw new DatasetException(file, 0, "empty file: no JSON object");
            }
            return new Dataset(file, columns, rows, toArray(lines));
        } catch (IOException e) {
            throw io(file, e);
        }
    }

    /**
     * Reads a {@code .json} file: a JSON array of objects, or JSON Lines if it does not start with
     * {@code [}.
     *
     * @param file the file
     * @return the dataset
     */
    public static Dataset readJson(Path file) {
        try (BufferedReader r = Files.newBufferedReader(file)) {
            int c;
            do {
                c = r.read();
            } while (c == '\uFEFF' || (c != -1 && Character.isWhitespace(c)));
            if (c != '[') {
                return readJsonl(file);
            }
        } catch (CharacterCodingException e) {
            throw new DatasetException(file, utf8ErrorLine(file), "not valid UTF-8", e);
        } catch (IOException e) {
            throw io(file, e);
        }
        try (BufferedReader r = Files.newBufferedReader(file);
                JsonParser p = JSON.createParser(r)) {
            List<String> columns = null;
            List<String[]> rows = new ArrayList<>();
            List<Integer> lines = new ArrayList<>();
            int lineNo = 1;
            try {
                p.nextToken(); // START_ARRAY
                JsonToken t;
                while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
                    if (t == null) {
                        throw new DatasetException(file, p.currentLocation().getLineNr(), "unterminated JSON array");
                    }
                    lineNo = p.currentTokenLocation().getLineNr();
                    JsonNode node = p.readValueAsTree();
                    if (columns == null) {
                        columns = jsonColumns(file, lineNo, node);
                    }
                    rows.add(jsonRow(file, lineNo, node, columns));
                    lines.add(lineNo);
                }
                if (p.nextToken() != null) {
                    throw new DatasetException(file, p.currentTokenLocation().getLineNr(),
                            "unexpected content after the JSON array");
                }
            } catch (JsonProcessingException e) {
                throw new DatasetException(file, e.getLocation() == null ? lineNo : e.getLocation().getLineNr(),
                        "not valid JSON: " + e.getOriginalMessage(), e);
            }
            if (columns == null) {
                throw new DatasetException(file, 0, "empty JSON array: no rows, no columns");
            }
            return new Dataset(file, columns, rows, toArray(lines));
        } catch (CharacterCodingException e) {
            throw new DatasetException(file, utf8ErrorLine(file), "not valid UTF-8", e);
        } catch (IOException e) {
            throw io(file, e);
        }
    }

    private static List<String> jsonColumns(Path file, int line, JsonNode node) {
        if (!node.isObject()) {
            throw new DatasetException(file, line, "expected a JSON object, found " + node.getNodeType());
        }
        List<String> cols = new ArrayList<>();
        node.fieldNames().forEachRemaining(cols::add);
        if (cols.isEmpty()) {
            throw new DatasetException(file, line, "the first object has no fields: no columns");
        }
        return cols;
    }

    private static String[] jsonRow(Path file, int line, JsonNode node, List<String> columns) {
        if (!node.isObject()) {
            throw new DatasetException(file, line, "expected a JSON object, found " + node.getNodeType());
        }
        String[] row = new String[columns.size()];
        for (int i = 0; i < row.length; i++) {
            JsonNode v = node.get(columns.get(i));
            if (v == null) {
                throw new DatasetException(file, line, "missing column '" + columns.get(i)
                        + "' (columns, from the first row: " + String.join(", ", columns) + ")");
            }
            row[i] = v.isNull() ? null : v.isValueNode() ? v.asText() : v.toString();
        }
        if (node.size() != columns.size()) {
            for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (!columns.contains(k)) {
                    throw new DatasetException(file, line, "unexpected column '" + k
                            + "' (columns, from the first row: " + String.join(", ", columns) + ")");
                }
            }
        }
        return row;
    }

    // ------------------------------------------------------------------ shared

    private static List<String> header(Path file, int line, String[] fields) {
        Set<String> seen = new HashSet<>();
        for (String f : fields) {
            if (f.isEmpty()) {
                throw new DatasetException(file, line, "the header has an empty column name");
            }
            if (!seen.add(f)) {
                throw new DatasetException(file, line, "the header names column '" + f + "' twice");
            }
        }
        return List.of(fields);
    }

    private static DatasetException ragged(Path file, int line, int n, List<String> columns) {
        return new DatasetException(file, line, n + (n == 1 ? " field" : " fields") + ", but the header names "
                + columns.size() + " columns (" + String.join(", ", columns) + ")");
    }

    private static RuntimeException io(Path file, IOException e) {
        return new UncheckedIOException("cannot read " + file, e);
    }

    private static int[] toArray(List<Integer> l) {
        int[] a = new int[l.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = l.get(i);
        }
        return a;
    }

    // ------------------------------------------------------------------ access

    /** @return the file the dataset was read from */
    public Path file() {
        return file;
    }

    /** @return the column names, in file order */
    public List<String> columns() {
        return columns;
    }

    /** @return the number of rows (the header not counted) */
    public int size() {
        return rows.size();
    }

    /**
     * @param name a column name
     * @return whether the dataset has that column
     */
    public boolean hasColumn(String name) {
        return index.containsKey(name);
    }

    /**
     * @param row a row index, from 0
     * @return the row as column name to value (in column order; a JSON {@code null} is {@code null})
     */
    public Map<String, String> row(int row) {
        String[] r = rows.get(row);
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < r.length; i++) {
            m.put(columns.get(i), r[i]);
        }
        return Collections.unmodifiableMap(m);
    }

    /** @return every row as a map (a view, built row by row on access) */
    public List<Map<String, String>> rows() {
        return new AbstractList<>() {
            @Override
            public Map<String, String> get(int i) {
                return row(i);
            }

            @Override
            public int size() {
                return rows.size();
            }
        };
    }

    /**
     * @param row a row index
     * @param column a column name
     * @return the value
     * @throws DatasetException if there is no such column
     */
    public String get(int row, String column) {
        return rows.get(row)[columnIndex(column)];
    }

    /**
     * @param row a row index, from 0
     * @return the 1-based line of the file where the row starts, for messages about its values
     */
    public int lineOf(int row) {
        return lines[row];
    }

    /**
     * @param name a column name
     * @return the values of that column, one per row
     * @throws DatasetException if there is no such column
     */
    public List<String> column(String name) {
        int c = columnIndex(name);
        List<String> out = new ArrayList<>(rows.size());
        for (String[] r : rows) {
            out.add(r[c]);
        }
        return out;
    }

    /**
     * A column parsed as integers (class labels).
     *
     * @param name a column name
     * @return the values, one per row
     * @throws DatasetException naming the line if a value is not an integer
     */
    public int[] intColumn(String name) {
        int c = columnIndex(name);
        int[] out = new int[rows.size()];
        for (int i = 0; i < out.length; i++) {
            String v = rows.get(i)[c];
            try {
                out[i] = Integer.parseInt(v == null ? "" : v.strip());
            } catch (NumberFormatException e) {
                throw new DatasetException(file, lines[i], "column '" + name + "': "
                        + (v == null ? "null" : "\"" + v + "\"") + " is not an integer");
            }
        }
        return out;
    }

    /**
     * A column parsed as numbers (regression targets).
     *
     * @param name a column name
     * @return the values, one per row
     * @throws DatasetException naming the line if a value is not a number
     */
    public float[] floatColumn(String name) {
        int c = columnIndex(name);
        float[] out = new float[rows.size()];
        for (int i = 0; i < out.length; i++) {
            String v = rows.get(i)[c];
            try {
                out[i] = Float.parseFloat(v == null ? "" : v.strip());
            } catch (NumberFormatException e) {
                throw new DatasetException(file, lines[i], "column '" + name + "': "
                        + (v == null ? "null" : "\"" + v + "\"") + " is not a number");
            }
        }
        return out;
    }

    /**
     * The text column by convention: {@code sentence} if present, else {@code text}.
     *
     * @return the column name
     * @throws DatasetException if there is neither
     */
    public String defaultTextColumn() {
        if (hasColumn("sentence")) {
            return "sentence";
        }
        if (hasColumn("text")) {
            return "text";
        }
        throw new DatasetException(file, 0, "no 'sentence' or 'text' column to take the text from (columns: "
                + String.join(", ", columns) + "); name the text column explicitly");
    }

    /** @return the values of {@link #defaultTextColumn()} */
    public List<String> texts() {
        return column(defaultTextColumn());
    }

    private int columnIndex(String name) {
        Integer c = index.get(name);
        if (c == null) {
            throw new DatasetException(file, 0, "no column '" + name + "' (columns: "
                    + String.join(", ", columns) + ")");
        }
        return c;
    }

    @Override
    public String toString() {
        return "Dataset{" + file + ", " + rows.size() + " rows, columns=" + columns + "}";
    }
}
