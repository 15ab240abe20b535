package org.bertj.train;

/**
 * Which columns of a data file hold the text, the optional second text of a pair, and the label.
 *
 * @param text the text column, or null for {@code sentence}, else {@code text}
 * @param pair the second text of a pair (e.g. a hypothesis), or null for single texts
 * @param label the label column (default {@code label})
 */
public record TextColumns(String text, String pair, String label) {
  /** {@code sentence}/{@code text}, no pair, {@code label}. */
  public static final TextColumns DEFAULT = new TextColumns(null, null, "label");

  public TextColumns {
    if (label == null) {
      label = "label";
    }
  }
}
