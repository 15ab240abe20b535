package org.bertj.train;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code metrics.jsonl}: one JSON object per logging step and per evaluation, flushed line by
 * line (non-finite numbers are written as null). Kept in memory too, for the plot.
 */
final class MetricsLog implements AutoCloseable {
  static final ObjectMapper JSON = new ObjectMapper();

  private final List<Map<String, Object>> lines = new ArrayList<>();
  private final BufferedWriter out;

  /**
   * Opens the log (file may be null: memory only), starting with {@code keep} (the lines of an
   * earlier run being resumed).
   */
  MetricsLog(Path file, List<Map<String, Object>> keep) {
    try {
      if (file == null) {
        out = null;
      } else {
        out = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
            StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
      }
      for (Map<String, Object> l : keep) {
        add(l);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file, e);
    }
  }

  /** The lines of an existing metrics.jsonl with step <= maxStep (none when absent). */
  static List<Map<String, Object>> readUpTo(Path file, int maxStep) {
    List<Map<String, Object>> out = new ArrayList<>();
    if (file == null || !Files.isRegularFile(file)) {
      return out;
    }
    try {
      for (String s : Files.readAllLines(file, StandardCharsets.UTF_8)) {
        if (s.isBlank()) {
          continue;
        }
        Map<String, Object> m = JSON.readValue(s, new TypeReference<LinkedHashMap<String, Object>>() {});
        if (m.get("step") instanceof Number n && n.intValue() <= maxStep) {
          out.add(m);
        }
      }
    } catch (IOException e) {
      // a damaged log is not worth stopping a resume for: start it afresh
      out.clear();
    }
    return out;
  }

  void add(Map<String, Object> line) {
    Map<String, Object> clean = new LinkedHashMap<>();
    line.forEach((k, v) -> clean.put(k, v instanceof Double d && !Double.isFinite(d) ? null
        : v instanceof Float f && !Float.isFinite(f) ? null : v));
    lines.add(clean);
    if (out != null) {
      try {
        out.write(JSON.writeValueAsString(clean));
        out.write('\n');
        out.flush();
      } catch (IOException e) {
        throw new UncheckedIOException("cannot write metrics.jsonl", e);
      }
    }
  }

  List<Map<String, Object>> lines() {
    return Collections.unmodifiableList(lines);
  }

  @Override
  public void close() {
    if (out != null) {
      try {
        out.close();
      } catch (IOException e) {
        // flushed after every line already
      }
    }
  }
}
