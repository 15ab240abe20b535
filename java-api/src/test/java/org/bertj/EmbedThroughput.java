package org.bertj;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.bertj.backend.Device;
import org.bertj.io.Dataset;

/**
 * Embed throughput, bertj vs ONNX Runtime Java, on the same sentences in the same JVM: both get
 * the same length-sorted, padded batches (bertj's tokenizer), both mean-pool on the host; timed
 * passes alternate. Run:
 *
 * <pre>
 * ./mvnw -q -pl java-api test-compile exec:java -Dexec.classpathScope=test \
 *     -Dexec.mainClass=org.bertj.EmbedThroughput -Dbench.data=../shared/data/sst2/test.tsv
 * </pre>
 *
 * Arguments (or system properties, as {@code -Dexec.args} would also reach the native build):
 * data file ({@code bench.data}), device ({@code bench.device}, default cpu), batch size
 * ({@code bench.batch}, 32), timed passes ({@code bench.passes}, 3).
 */
public final class EmbedThroughput {
  private EmbedThroughput() {}

  private static String arg(String[] args, int i, String prop, String dflt) {
    return args.length > i ? args[i] : System.getProperty(prop, dflt);
  }

  public static void main(String[] args) throws Exception {
    Path data = Path.of(arg(args, 0, "bench.data", "../shared/data/sst2/test.tsv"));
    Device dev = Device.parse(arg(args, 1, "bench.device", "cpu"));
    int batch = Integer.parseInt(arg(args, 2, "bench.batch", "32"));
    int passes = Integer.parseInt(arg(args, 3, "bench.passes", "3"));
    List<String> texts = Dataset.read(data).texts();
    try (SentenceEncoder enc = SentenceEncoder.builder().optDevice(dev).optBatchSize(batch).build();
        OrtMiniLm ort = new OrtMiniLm()) {
      System.out.printf(Locale.ROOT, "%d sentences of %s, batch %d, bertj on %s, %d cores%n",
          texts.size(), data, batch, enc.deviceName(), Runtime.getRuntime().availableProcessors());
      double[] ours = new double[passes + 1];
      double[] theirs = new double[passes + 1];
      for (int p = 0; p <= passes; p++) { // pass 0 warms up
        long t0 = System.nanoTime();
        float[][] a = enc.embed(texts);
        ours[p] = (System.nanoTime() - t0) / 1e9;
        t0 = System.nanoTime();
        float[][] b = new float[texts.size()][];
        for (LengthBatcher.Chunk c : enc.plan(texts)) {
          float[][] v = enc.pool(c.batch(), ort.lastHiddenState(c.batch()));
          for (int i = 0; i < v.length; i++) {
            b[c.rows()[i]] = v[i];
          }
        }
        theirs[p] = (System.nanoTime() - t0) / 1e9;
        double maxRel = 0;
        for (int i = 0; i < a.length; i++) {
          double num = 0;
          double den = 0;
          for (int k = 0; k < a[i].length; k++) {
            num += (a[i][k] - b[i][k]) * (double) (a[i][k] - b[i][k]);
            den += (double) b[i][k] * b[i][k];
          }
          maxRel = Math.max(maxRel, Math.sqrt(num / den));
        }
        System.out.printf(Locale.ROOT, "%s: bertj %.2f s (%.1f sentences/s), ONNX Runtime %.2f s "
            + "(%.1f sentences/s); max relative difference of the embeddings %.2e%n",
            p == 0 ? "warm-up" : "pass " + p, ours[p], texts.size() / ours[p], theirs[p],
            texts.size() / theirs[p], maxRel);
      }
      double[] o = java.util.Arrays.copyOfRange(ours, 1, passes + 1);
      double[] t = java.util.Arrays.copyOfRange(theirs, 1, passes + 1);
      java.util.Arrays.sort(o);
      java.util.Arrays.sort(t);
      System.out.printf(Locale.ROOT, "best of %d: bertj %.1f sentences/s, ONNX Runtime %.1f "
          + "sentences/s; median: bertj %.1f, ONNX Runtime %.1f sentences/s%n", passes,
          texts.size() / o[0], texts.size() / t[0], texts.size() / o[passes / 2],
          texts.size() / t[passes / 2]);
    }
  }
}
