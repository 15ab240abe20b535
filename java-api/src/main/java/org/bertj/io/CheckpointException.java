package org.bertj.io;

import java.nio.file.Path;

/**
 * A checkpoint file (safetensors, {@code config.json}, {@code tokenizer.json}, an ONNX model) that
 * cannot be used as it is. The message always names the file and, where there is one, the tensor or
 * field at fault, e.g. {@code model.safetensors: tensor 'encoder.layer.0.attention.self.query.weight':
 * data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16}.
 */
public class CheckpointException extends RuntimeException {

    /** Serialization version. */
    private static final long serialVersionUID = 1L;

    /** The file at fault (not serialized). */
    private final transient Path file;
    /** The tensor or field at fault, or null. */
    private final String field;

    /**
     * Creates the exception.
     *
     * @param file the file at fault
     * @param field the tensor or field at fault, already quoted as it should read (e.g. {@code
     *     tensor 'x'}), or {@code null} when the fault is with the file as a whole
     * @param detail what is wrong
     */
    public CheckpointException(Path file, String field, String detail) {
        this(file, field, detail, null);
    }

    /**
     * Creates the exception with a cause.
     *
     * @param file the file at fault
     * @param field the tensor or field at fault, or {@code null}
     * @param detail what is wrong
     * @param cause the underlying error, or {@code null}
     */
    public CheckpointException(Path file, String field, String detail, Throwable cause) {
        this(String.valueOf(file), file, field, detail, cause);
    }

    /**
     * Creates the exception for a source that is not a file (e.g. JSON text given as a string).
     *
     * @param source what was being read, as it should appear in the message
     * @param field the field at fault, or {@code null}
     * @param detail what is wrong
     */
    public CheckpointException(String source, String field, String detail) {
        this(source, null, field, detail, null);
    }

    private CheckpointException(String source, Path file, String field, String detail, Throwable cause) {
        super(source + ": " + (field == null ? "" : field + ": ") + detail, cause);
        this.file = file;
        this.field = field;
    }

    /** @return the file at fault, or {@code null} when the source was not a file */
    public Path getFile() {
        return file;
    }

    /** @return the tensor or field at fault, or {@code null} when the whole file is at fault */
    public String getField() {
        return field;
    }
}
