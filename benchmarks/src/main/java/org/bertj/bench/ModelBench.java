package org.bertj.bench;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.bertj.backend.Backend;
import org.bertj.backend.Device;
import org.bertj.io.BertConfig;
import org.bertj.model.Batch;
import org.bertj.model.BertForSequenceClassification;
import org.bertj.model.ModelShapes;
import org.bertj.train.AdamW;
import org.bertj.train.TrainStep;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * End-to-end: one training step (forward, backward, clip, AdamW) and one inference forward of a
 * model shape with random weights and full-length sequences. Samples/s = batch * 1000 / (ms/op).
 * Run: {@code java -jar benchmarks/target/benchmarks.jar ModelBench -p model=minilm -p batch=32
 * -p seq=64 -p device=cpu}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class ModelBench {
  @Param({"minilm"})
  public String model;

  @Param({"32"})
  public int batch;

  @Param({"64"})
  public int seq;

  @Param({"cpu"})
  public String device;

  private Backend be;
  private BertForSequenceClassification m;
  private AdamW opt;
  private TrainStep step;
  private Batch train;
  private Batch infer;

  @Setup(Level.Trial)
  public void setup() {
    BertConfig cfg = ModelShapes.named(model, 2);
    SplittableRandom r = new SplittableRandom(42);
    int[] ids = new int[batch * seq];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = i % seq == 0 ? 101 : 1000 + r.nextInt(cfg.getVocabSize() - 1000);
    }
    int[] labels = new int[batch];
    for (int i = 0; i < batch; i++) {
      labels[i] = r.nextInt(2);
    }
    infer = Batch.of(ids, null, null, batch, seq);
    train = infer.withLabels(labels);
    be = Backend.create(Device.parse(device));
    m = BertForSequenceClassification.create(be, cfg, 42);
    opt = new AdamW(m.parameters(), 0.9f, 0.999f, 1e-8f, 0.01f);
    step = new TrainStep(m, opt, 1f);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    step.close();
    opt.close();
    m.close();
    be.close();
  }

  @Benchmark
  public void trainStep() {
    step.run(train, 5e-5f, 42);
    be.synchronize();
  }

  @Benchmark
  public void inference() {
    m.forward(infer);
    be.synchronize();
  }
}
