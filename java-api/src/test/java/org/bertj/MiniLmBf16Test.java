package org.bertj;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.bertj.backend.Backend;
import org.bertj.backend.CpuBackend;
import org.bertj.backend.Precision;
import org.bertj.io.BertTokenizer;
import org.bertj.io.Dataset;
import org.bertj.io.EncodingBatch;
import org.bertj.io.MiniLmConverter;
import org.bertj.model.Batch;
import org.bertj.model.BertForSequenceClassification;
import org.junit.jupiter.api.Test;

/**
 * all-MiniLM-L6-v2 (real weights) with a classification head: bf16 mixed precision vs fp32 on
 * 32 padded SST-2 test sentences, logits and last hidden state within 1e-2 relative.
 */
class MiniLmBf16Test {
  static double[] compare(Backend be) {
    Path model = MiniLmConverter.ensureConverted();
    Path data = Path.of(System.getProperty("bertj.data.dir", "../../shared/data"), "sst2",
        "test.tsv");
    List<String> sentences = Dataset.read(data).texts().subList(0, 32);
    try (BertTokenizer tok = BertTokenizer.forModel(model);
        BertForSequenceClassification m = BertForSequenceClassification.fromPretrained(be, model,
            42L)) {
      EncodingBatch eb = tok.encodeBatch(sentences);
      Batch b = Batch.of(eb.inputIds(), eb.tokenTypeIds(), eb.attentionMask(), eb.batchSize(),
          eb.seqLen());
      m.forward(b);
      float[] logits32 = m.logitsArray();
      float[] hidden32 = be.download(m.bert().lastHiddenState());
      m.parameters().setPrecision(Precision.BF16);
      m.forward(b);
      float[] logits16 = m.logitsArray();
      float[] hidden16 = be.download(m.bert().lastHiddenState());
      return new double[] {rel(logits16, logits32), rel(hidden16, hidden32)};
    }
  }

  static double rel(float[] a, float[] b) {
    double num = 0;
    double den = 0;
    for (int i = 0; i < a.length; i++) {
      double d = (double) a[i] - b[i];
      num += d * d;
      den += (double) b[i] * b[i];
    }
    double r = Math.sqrt(num / den);
    return Double.isNaN(r) ? Double.POSITIVE_INFINITY : r;
  }

  @Test
  void bf16LogitsAgreeWithFp32() {
    try (CpuBackend be = new CpuBackend()) {
      double[] e = compare(be);
      System.out.printf(Locale.ROOT, "MiniLM bf16 vs fp32 on %s: logits rel %.3e, last hidden "
          + "state rel %.3e%n", be.name(), e[0], e[1]);
      assertTrue(e[0] < 1e-2, "logits " + e[0]);
      assertTrue(e[1] < 1e-2, "last hidden state " + e[1]);
    }
  }
}
