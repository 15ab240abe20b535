package org.bertj.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.bertj.io.BertConfig.ProblemType;
import org.bertj.io.DatasetException;
import org.junit.jupiter.api.Test;

class LabelSpaceTest {
  static final Path F = Path.of("train.tsv");

  static int[] lines(int n) {
    int[] l = new int[n];
    for (int i = 0; i < n; i++) {
      l[i] = i + 2;
    }
    return l;
  }

  static LabelSpace infer(String... raw) {
    return LabelSpace.infer(List.of(raw), null, F, lines(raw.length));
  }

  @Test
  void integersAreTheirOwnIds() {
    LabelSpace s = infer("1", "0", "1", "3");
    assertEquals(ProblemType.SINGLE_LABEL_CLASSIFICATION, s.problemType());
    assertEquals(List.of("0", "1", "2", "3"), s.names());
    assertEquals(3, s.id("3", F, 2));
    assertEquals(List.of("0", "1"), infer("1", "1").names()); // at least two classes
  }

  @Test
  void stringsInSortedOrder() {
    LabelSpace s = infer("positive", "negative", "neutral", "positive");
    assertEquals(List.of("negative", "neutral", "positive"), s.names());
    assertEquals(2, s.id(" positive ", F, 2));
    DatasetException e = assertThrows(DatasetException.class, () -> s.id("mixed", F, 7));
    assertTrue(e.getMessage().contains("train.tsv: line 7: label 'mixed' was not in the training "
        + "data (labels: negative, neutral, positive)"), e.getMessage());
    assertThrows(DatasetException.class, () -> infer("pos", "pos")); // one class only
  }

  @Test
  void multiLabelAndRegressionInferred() {
    LabelSpace m = infer("sports|politics", "art", "", "politics");
    assertEquals(ProblemType.MULTI_LABEL_CLASSIFICATION, m.problemType());
    assertEquals(List.of("art", "politics", "sports"), m.names());
    float[] t = new float[3];
    m.targets("sports | art", F, 2, t, 0);
    assertArrayEquals(new float[] {1, 0, 1}, t);

    LabelSpace r = infer("0.5", "3", "-1.25");
    assertEquals(ProblemType.REGRESSION, r.problemType());
    assertEquals(1, r.size());
    float[] v = new float[1];
    r.targets("2.5", F, 2, v, 0);
    assertEquals(2.5f, v[0]);
    DatasetException e = assertThrows(DatasetException.class,
        () -> LabelSpace.infer(List.of("1.0", "x"), ProblemType.REGRESSION, F, lines(2)));
    assertTrue(e.getMessage().contains("line 3"), e.getMessage());
  }
}
