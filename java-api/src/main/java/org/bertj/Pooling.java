package org.bertj;

import java.util.Locale;

/** How {@link SentenceEncoder} turns the last hidden state {@code (T, C)} of a text into one vector. */
public enum Pooling {
  /** The hidden state of the first token ({@code [CLS]}). */
  CLS,
  /**
   * The mean of the hidden states of the real tokens (padding excluded, {@code [CLS]} and
   * {@code [SEP]} included): the sentence-transformers convention, and the default.
   */
  MEAN;

  /**
   * Parses {@code cls} or {@code mean}, in any case.
   *
   * @param s the name
   * @return the pooling
   * @throws IllegalArgumentException naming the value when it is neither
   */
  public static Pooling parse(String s) {
    if (s != null) {
      for (Pooling p : values()) {
        if (p.name().equalsIgnoreCase(s.trim())) {
          return p;
        }
      }
    }
    throw new IllegalArgumentException("unknown pooling '" + s + "': expected cls or mean");
  }

  /** @return the lower-case name, as the command line spells it */
  @Override
  public String toString() {
    return name().toLowerCase(Locale.ROOT);
  }
}
