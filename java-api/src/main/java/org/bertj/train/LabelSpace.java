package org.bertj.train;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.bertj.io.BertConfig;
import org.bertj.io.BertConfig.ProblemType;
import org.bertj.io.DatasetException;

/**
 * The labels of a task: the problem type and the label names by id, and how a label as written
 * in a data file becomes a training target.
 *
 * <ul>
 *   <li>Single-label: non-negative integers are their own ids ({@code num_labels = max + 1}, at
 *       least 2, names {@code "0", "1", ...}); any other labels are strings, mapped to ids in
 *       sorted order.
 *   <li>Multi-label: several labels per row separated by {@code |} (an empty field: none); the
 *       label set is the union, named and numbered as for single-label.
 *   <li>Regression: one float per row, {@code num_labels = 1}.
 * </ul>
 *
 * When no problem type is given it is inferred: multi-label if any label holds {@code |},
 * single-label if every label is an integer, regression if every label is a number, else
 * single-label with string labels.
 */
public final class LabelSpace {
  private final ProblemType problemType;
  private final List<String> names;
  private final Map<String, Integer> ids;

  private LabelSpace(ProblemType problemType, List<String> names) {
    this.problemType = problemType;
    this.names = List.copyOf(names);
    Map<String, Integer> m = new LinkedHashMap<>();
    for (int i = 0; i < names.size(); i++) {
      m.put(names.get(i), i);
    }
    this.ids = Collections.unmodifiableMap(m);
  }

  /** A label space with these names (by id). */
  public static LabelSpace of(ProblemType problemType, List<String> names) {
    if (names.isEmpty()) {
      throw new IllegalArgumentException("a task needs at least one label");
    }
    return new LabelSpace(problemType, names);
  }

  /** The labels a fine-tuned model's config.json names (id2label, problem_type). */
  public static LabelSpace fromConfig(BertConfig c) {
    return new LabelSpace(c.getEffectiveProblemType(), c.getLabels());
  }

  /**
   * Infers the labels of a training file.
   *
   * @param raw the label column, one value per row
   * @param forced the problem type, or null to infer it
   * @param file the file (for messages)
   * @param lines the 1-based line of each row (for messages)
   */
  public static LabelSpace infer(List<String> raw, ProblemType forced, Path file, int[] lines) {
    ProblemType pt = forced;
    if (pt == null) {
      boolean pipe = false;
      boolean allInt = true;
      boolean allNum = true;
      for (String s : raw) {
        String v = s == null ? "" : s.strip();
        pipe |= v.contains("|");
        allInt &= isInt(v);
        allNum &= isNumber(v);
      }
      pt = pipe ? ProblemType.MULTI_LABEL_CLASSIFICATION
          : allInt ? ProblemType.SINGLE_LABEL_CLASSIFICATION
          : allNum ? ProblemType.REGRESSION : ProblemType.SINGLE_LABEL_CLASSIFICATION;
    }
    if (pt == ProblemType.REGRESSION) {
      for (int i = 0; i < raw.size(); i++) {
        parseFloat(raw.get(i), file, lines[i]);
      }
      return new LabelSpace(pt, List.of("LABEL_0"));
    }
    TreeSet<String> seen = new TreeSet<>();
    for (int i = 0; i < raw.size(); i++) {
      String v = raw.get(i);
      if (v == null || (pt == ProblemType.SINGLE_LABEL_CLASSIFICATION && v.isBlank())) {
        throw new DatasetException(file, lines[i], "empty label");
      }
      if (pt == ProblemType.MULTI_LABEL_CLASSIFICATION) {
        seen.addAll(splitMulti(v));
      } else {
        seen.add(v.strip());
      }
    }
    if (seen.isEmpty()) {
      throw new DatasetException(file, 0, "no labels in the label column");
    }
    boolean numeric = seen.stream().allMatch(LabelSpace::isNonNegativeInt);
    List<String> names = new ArrayList<>();
    if (numeric) {
      int max = 0;
      for (String s : seen) {
        max = Math.max(max, Integer.parseInt(s));
      }
      int n = Math.max(pt == ProblemType.SINGLE_LABEL_CLASSIFICATION ? 2 : 1, max + 1);
      for (int i = 0; i < n; i++) {
        names.add(Integer.toString(i));
      }
    } else {
      names.addAll(seen);
      if (pt == ProblemType.SINGLE_LABEL_CLASSIFICATION && names.size() < 2) {
        throw new DatasetException(file, 0, "every row has the label '" + names.get(0)
            + "': single-label classification needs at least two labels");
      }
    }
    return new LabelSpace(pt, names);
  }

  static List<String> splitMulti(String v) {
    List<String> out = new ArrayList<>();
    for (String p : v.split("\\|", -1)) {
      String t = p.strip();
      if (!t.isEmpty()) {
        out.add(t);
      }
    }
    return out;
  }

  private static boolean isInt(String v) {
    try {
      Integer.parseInt(v);
      return true;
    } catch (NumberFormatException e) {
      return false;
    }
  }

  private static boolean isNonNegativeInt(String v) {
    return isInt(v) && Integer.parseInt(v) >= 0 && v.equals(Integer.toString(Integer.parseInt(v)));
  }

  private static boolean isNumber(String v) {
    try {
      return Double.isFinite(Double.parseDouble(v));
    } catch (NumberFormatException e) {
      return false;
    }
  }

  private static float parseFloat(String s, Path file, int line) {
    String v = s == null ? "" : s.strip();
    try {
      float f = Float.parseFloat(v);
      if (Float.isFinite(f)) {
        return f;
      }
    } catch (NumberFormatException e) {
      // below
    }
    throw new DatasetException(file, line, "regression label '" + v + "' is not a finite number");
  }

  /** The id of one single-label value; a label never seen in training is an error naming it. */
  public int id(String raw, Path file, int line) {
    String v = raw == null ? "" : raw.strip();
    Integer id = ids.get(v);
    if (id == null && isNonNegativeInt(v) && names.stream().allMatch(n -> n.startsWith("LABEL_"))
        && Integer.parseInt(v) < names.size()) {
      id = Integer.parseInt(v); // a model with transformers' default names LABEL_i
    }
    if (id == null) {
      throw new DatasetException(file, line, "label '" + v + "' was not in the training data"
          + " (labels: " + String.join(", ", names) + ")");
    }
    return id;
  }

  /** The targets of one row: multi-hot for multi-label, the value for regression. */
  public void targets(String raw, Path file, int line, float[] out, int offset) {
    if (problemType == ProblemType.REGRESSION) {
      out[offset] = parseFloat(raw, file, line);
      return;
    }
    for (String p : splitMulti(raw == null ? "" : raw)) {
      out[offset + id(p, file, line)] = 1f;
    }
  }

  public ProblemType problemType() {
    return problemType;
  }

  /** Label names by id (id2label). */
  public List<String> names() {
    return names;
  }

  public int size() {
    return names.size();
  }

  public String name(int id) {
    return names.get(id);
  }

  /** {@code config} with these labels, this problem type and BertForSequenceClassification. */
  public BertConfig applyTo(BertConfig config) {
    return config.toBuilder().optLabels(names).optProblemType(problemType)
        .optArchitectures(List.of("BertForSequenceClassification")).build();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof LabelSpace l && l.problemType == problemType && l.names.equals(names);
  }

  @Override
  public int hashCode() {
    return problemType.hashCode() * 31 + names.hashCode();
  }

  @Override
  public String toString() {
    return problemType.jsonName() + " " + names;
  }
}
