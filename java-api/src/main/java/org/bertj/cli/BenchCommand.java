package org.bertj.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import org.bertj.backend.Backend;
import org.bertj.backend.Device;
import org.bertj.backend.GraphCache;
import org.bertj.backend.Precision;
import org.bertj.io.BertConfig;
import org.bertj.model.Batch;
import org.bertj.model.BertForSequenceClassification;
import org.bertj.model.ModelShapes;
import org.bertj.train.AdamW;
import org.bertj.train.TrainStep;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bertj bench}: training-step or inference throughput of a model shape on a device, with
 * random weights and random sequences (full length, or with {@code --min-length} of random
 * lengths, padded to {@code --seq} with an attention mask). Prints one JSON line on stdout.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
    description = "Measure training-step or inference throughput; prints one JSON line.")
public final class BenchCommand implements Callable<Integer> {
  @Option(names = "--model", defaultValue = "bert-base",
      description = "bert-base, bert-large, minilm, or a model folder (config.json). Default: ${DEFAULT-VALUE}")
  String model;

  @Option(names = "--mode", defaultValue = "train", description = "train or infer. Default: ${DEFAULT-VALUE}")
  String mode;

  @Option(names = "--batch", defaultValue = "32", description = "Batch size. Default: ${DEFAULT-VALUE}")
  int batch;

  @Option(names = "--seq", defaultValue = "128", description = "Sequence length. Default: ${DEFAULT-VALUE}")
  int seq;

  @Option(names = "--min-length", defaultValue = "0", description = "If > 0 and < --seq: each "
      + "sequence gets a random length in [min-length, seq] and is padded to seq (attention mask). "
      + "Default: full length")
  int minLength;

  @Option(names = "--device", defaultValue = "auto", description = "auto, cpu or cuda. Default: ${DEFAULT-VALUE}")
  String device;

  @Option(names = "--precision", defaultValue = "fp32", description = "fp32, bf16 (bf16 GEMM inputs, fp32 accumulation) or auto (bf16 on CUDA). Default: ${DEFAULT-VALUE}")
  String precision;

  @Option(names = "--warmup", defaultValue = "3", description = "Untimed steps first. Default: ${DEFAULT-VALUE}")
  int warmup;

  @Option(names = "--iters", defaultValue = "10", description = "Timed steps. Default: ${DEFAULT-VALUE}")
  int iters;

  @Option(names = "--seed", defaultValue = "42", description = "Seed of weights and data. Default: ${DEFAULT-VALUE}")
  long seed;

  @Option(names = "--profile", description = "Also time every op of one more step on the device "
      + "(CUDA only) and print them as a second JSON line, by op and shape. An op's time runs from "
      + "the previous op's end, so where the host falls behind, the wait is charged to the next op.")
  boolean profile;

  @Option(names = "--graphs", arity = "0..1", fallbackValue = "true",
      description = "Capture the step's device work into a graph (CUDA graphs; an emulation on "
      + "the CPU) on its second run and replay it from then on: true or false. Default: the system "
      + "property bertj.graphs, else false.")
  Boolean graphs;

  @Override
  public Integer call() throws Exception {
    boolean train = switch (mode) {
      case "train" -> true;
      case "infer" -> false;
      default -> throw new IllegalArgumentException("--mode must be train or infer, got " + mode);
    };
    if (batch <= 0 || seq <= 0 || iters <= 0 || warmup < 0) {
      throw new IllegalArgumentException("--batch, --seq and --iters must be > 0, --warmup >= 0");
    }
    BertConfig cfg = Files.isDirectory(Path.of(model)) ? BertConfig.forModel(Path.of(model))
        : ModelShapes.named(model, 2);
    if (seq > cfg.getMaxPositionEmbeddings()) {
      throw new IllegalArgumentException("--seq " + seq + " exceeds max_position_embeddings "
          + cfg.getMaxPositionEmbeddings());
    }
    SplittableRandom r = new SplittableRandom(seed);
    int[] ids = new int[batch * seq];
    int[] labels = new int[batch];
    for (int i = 0; i < ids.length; i++) {
      // [CLS] then ordinary word ids (past BERT's special and unused ids when the vocab is real)
      int v = cfg.getVocabSize();
      int lo = v > 2000 ? 1000 : 1;
      ids[i] = i % seq == 0 ? Math.min(101, v - 1) : lo + r.nextInt(v - lo);
    }
    for (int i = 0; i < batch; i++) {
      labels[i] = r.nextInt(cfg.getNumLabels());
    }
    int[] mask = null;
    long realTokens = (long) batch * seq;
    if (minLength > 0 && minLength < seq) {
      mask = new int[ids.length];
      realTokens = 0;
      for (int i = 0; i < batch; i++) {
        int len = minLength + r.nextInt(seq - minLength + 1);
        realTokens += len;
        for (int j = 0; j < seq; j++) {
          mask[i * seq + j] = j < len ? 1 : 0;
          if (j >= len) {
            ids[i * seq + j] = 0; // [PAD]
          }
        }
      }
    }
    Batch data = Batch.of(ids, new int[ids.length], mask, batch, seq).withLabels(labels);
    boolean useGraphs = graphs != null ? graphs : GraphCache.enabledByDefault();

    try (Backend be = Backend.create(Device.parse(device));
        BertForSequenceClassification m = BertForSequenceClassification.create(be, cfg, seed);
        AdamW opt = new AdamW(m.parameters(), 0.9f, 0.999f, 1e-8f, 0.01f);
        TrainStep trainStep = new TrainStep(m, opt, 1f, useGraphs)) {
      Precision prec = Precision.parse(precision, be.device());
      m.parameters().setPrecision(prec);
      GraphCache inferGraphs = m.useInferenceGraphs(useGraphs);
      Batch inputs = Batch.of(ids, null, mask, batch, seq);
      Runnable step = train ? () -> trainStep.run(data, 5e-5f, seed) : () -> m.forward(inputs);
      for (int i = 0; i < warmup; i++) {
        step.run();
      }
      be.synchronize();
      long t0 = System.nanoTime();
      for (int i = 0; i < iters; i++) {
        step.run();
      }
      be.synchronize();
      double ms = (System.nanoTime() - t0) / 1e6 / iters;
      ObjectNode o = new ObjectMapper().createObjectNode();
      o.put("bench", train ? "train_step" : "inference");
      o.put("model", model);
      o.put("device", be.name());
      o.put("precision", prec.label());
      o.put("batch", batch);
      o.put("seq", seq);
      o.put("iters", iters);
      o.put("ms_per_step", Math.round(ms * 1000) / 1000.0);
      o.put("samples_per_s", Math.round(batch * 1000.0 / ms * 10) / 10.0);
      o.put("tokens_per_s", Math.round((double) batch * seq * 1000.0 / ms));
      if (mask != null) {
        o.put("min_length", minLength);
        o.put("real_tokens", realTokens);
        o.put("real_tokens_per_s", Math.round(realTokens * 1000.0 / ms));
      }
      o.put("parameters", m.parameters().size());
      o.put("graphs", useGraphs);
      if (useGraphs) {
        GraphCache gc = train ? trainStep.graphs() : inferGraphs;
        o.put("graph_replays", gc.replays());
        o.put("graph_failures", gc.failures());
      }
      System.out.println(o);
      if (profile && be.startProfile()) {
        // one profiled step first (discarded): the host's profiling path gets compiled, so the
        // reported step's device times are not stretched by host waits
        step.run();
        be.stopProfile();
        be.startProfile();
        step.run();
        java.util.Map<String, double[]> ops = be.stopProfile();
        ObjectNode p = new ObjectMapper().createObjectNode();
        p.put("bench", "profile");
        p.put("of", train ? "train_step" : "inference");
        p.put("model", model);
        p.put("precision", prec.label());
        p.put("batch", batch);
        p.put("seq", seq);
        double total = ops.values().stream().mapToDouble(v -> v[0]).sum();
        p.put("total_ms", Math.round(total * 1000) / 1000.0);
        var arr = p.putArray("ops");
        ops.forEach((name, v) -> arr.addObject().put("op", name)
            .put("ms", Math.round(v[0] * 1000) / 1000.0).put("count", (long) v[1]));
        System.out.println(p);
      }
    }
    return 0;
  }
}
