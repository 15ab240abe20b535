package org.bertj.io;

import java.nio.file.Path;

/**
 * A dataset file that cannot be read as a table. The message names the file and, where it applies,
 * the line (1-based, counting the header) and the column, e.g. {@code train.tsv: line 57: 3 fields,
 * but the header names 2 columns (sentence, label)}.
 */
public class DatasetException extends RuntimeException {

    /** Serialization version. */
    private static final long serialVersionUID = 1L;

    /** The file at fault (not serialized). */
    private final transient Path file;
    /** The 1-based line at fault, or 0. */
    private final int line;

    /**
     * Creates the exception.
     *
     * @param file the file at fault
     * @param line the 1-based line at fault, or 0 when no line applies
     * @param detail what is wrong
     */
    public DatasetException(Path file, int line, String detail) {
        this(file, line, detail, null);
    }

    /**
     * Creates the exception with a cause.
     *
     * @param file the file at fault
     * @param line the 1-based line at fault, or 0 when no line applies
     * @param detail what is wrong
     * @param cause the underlying error, or {@code null}
     */
    public DatasetException(Path file, int line, String detail, Throwable cause) {
        super(file + ": " + (line > 0 ? "line " + line + ": " : "") + detail, cause);
        this.file = file;
        this.line = line;
    }

    /** @return the file at fault */
    public Path getFile() {
        return file;
    }

    /** @return the 1-based line at fault, or 0 when no line applies */
    public int getLine() {
        return line;
    }
}
