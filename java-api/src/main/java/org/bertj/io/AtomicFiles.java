package org.bertj.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** Write-to-temporary-then-rename, so that readers never see a half-written file. */
final class AtomicFiles {

    private AtomicFiles() {}

    /** Writes the temporary file it is given; may throw IOException. */
    interface Writer {
        void write(Path tmp) throws IOException;
    }

    /**
     * Has {@code writer} fill {@code <target>.tmp}, then renames it over {@code target} (atomically
     * where the file system can). On failure the temporary file is removed.
     */
    static void write(Path target, Writer writer) {
        Path abs = target.toAbsolutePath();
        Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp");
        try {
            if (abs.getParent() != null) {
                Files.createDirectories(abs.getParent());
            }
            writer.write(tmp);
            move(tmp, abs);
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw new UncheckedIOException("cannot write " + target, e);
        } catch (RuntimeException | Error e) {
            deleteQuietly(tmp);
            throw e;
        }
    }

    /** Renames {@code from} to {@code to}, atomically if possible, replacing a plain file. */
    static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // best effort
        }
    }

    /** Deletes a directory tree, best effort. */
    static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (var walk = Files.walk(dir)) {
            walk.sorted(java.util.Comparator.reverseOrder()).forEach(AtomicFiles::deleteQuietly);
        } catch (IOException ignored) {
            // best effort
        }
    }
}
