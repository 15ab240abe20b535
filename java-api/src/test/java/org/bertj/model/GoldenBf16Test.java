package org.bertj.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.bertj.backend.Backend;
import org.bertj.backend.CpuBackend;
import org.bertj.backend.Precision;
import org.bertj.io.SafetensorsReader;
import org.bertj.train.AdamW;
import org.junit.jupiter.api.Test;

/**
 * bf16 mixed precision against the tiny-bert golden files (transformers, float64): logits and
 * loss within 1e-2 relative (the bound).
 *
 * <p>The gradients get looser bounds, and why: this random tiny model's per-example gradients
 * nearly cancel over the batch (the classifier bias gradient, which needs no bf16 GEMM input, is
 * within 3e-3, yet the classifier weight gradient, dlogits^T pooled with pooled rounded to bf16,
 * is off by ~13%), so the 2^-9 input rounding shows up amplified. Measured on the CPU: 9.9% for
 * all gradients together, 18% for the worst tensor, 18% for the change of 3 AdamW steps. The
 * bounds (15%, 25%, 25%) still catch real faults: a stale bf16 weight copy or a wrong operand
 * gives errors of order 1.
 */
class GoldenBf16Test {
  static final double LOGITS_TOL = 1e-2;
  static final double GRAD_TOTAL_TOL = 0.15;
  static final double GRAD_TENSOR_TOL = 0.25;
  static final double UPDATE_TOL = 0.25;

  @Test
  void bf16AgreesWithTransformersOnCpu() {
    try (CpuBackend be = new CpuBackend()) {
      run(be);
    }
  }

  static void run(Backend be) {
    Path dir = TestUtil.tinyBert();
    List<String> report = new ArrayList<>();
    List<String> failures = new ArrayList<>();
    try (SafetensorsReader golden = SafetensorsReader.open(dir.resolve("golden.safetensors"));
        BertForSequenceClassification model =
            BertForSequenceClassification.fromPretrained(be, dir, 0L)) {
      Batch batch = GoldenParityTest.goldenBatch(golden);
      Parameters ps = model.parameters();
      float[] initial = be.download(ps.values());
      ps.setPrecision(Precision.BF16);
      assertEquals(Precision.BF16, ps.precision());
      ps.zeroGrad();
      model.forward(batch, true, 1234L);
      double e = TestUtil.relErr(model.logitsArray(), golden.readDoubles("logits"));
      report.add(String.format(Locale.ROOT, "logits rel %.3e", e));
      if (!(e < LOGITS_TOL)) {
        failures.add("logits: " + e);
      }
      double ref = golden.readDoubles("loss")[0];
      double le = Math.abs(model.loss() - ref) / Math.abs(ref);
      report.add(String.format(Locale.ROOT, "loss rel %.3e", le));
      if (!(le < LOGITS_TOL)) {
        failures.add("loss: " + le);
      }
      model.backward();
      double num = 0;
      double den = 0;
      double worst = 0;
      String worstName = "";
      for (Parameter p : ps.list()) {
        if (p.name().endsWith("attention.self.key.bias")) {
          continue; // zero by construction (softmax is shift invariant); fp32 test bounds it
        }
        float[] g = be.download(p.grad());
        double[] r = golden.readDoubles("grad." + p.name());
        double abs = TestUtil.absDiff(g, r);
        double nr = TestUtil.norm(r);
        num += abs * abs;
        den += nr * nr;
        double rel = abs / nr;
        if (rel > worst) {
          worst = rel;
          worstName = p.name();
        }
        if (!(rel < GRAD_TENSOR_TOL)) {
          failures.add("grad " + p.name() + ": " + rel);
        }
      }
      double total = Math.sqrt(num / den);
      report.add(String.format(Locale.ROOT, "gradients rel %.3e (worst tensor %s %.3e)", total,
          worstName, worst));
      if (!(total < GRAD_TOTAL_TOL)) {
        failures.add("gradients: " + total);
      }
      try (AdamW opt = new AdamW(ps, 0.9f, 0.999f, 1e-8f, 0.01f).decayRange(0, ps.size())) {
        opt.step(GoldenParityTest.LR);
        for (int s = 2; s <= 3; s++) {
          ps.zeroGrad();
          model.forward(batch, true, 1234L + s);
          model.backward();
          opt.step(GoldenParityTest.LR);
        }
      }
      float[] after = be.download(ps.values());
      double un = 0;
      double ud = 0;
      for (Parameter p : ps.list()) {
        double[] step3 = golden.readDoubles("step3." + p.name());
        int off = (int) p.offset();
        for (int i = 0; i < step3.length; i++) {
          double want = step3[i] - initial[off + i];
          double got = (double) after[off + i] - initial[off + i];
          un += (got - want) * (got - want);
          ud += want * want;
        }
      }
      double ue = Math.sqrt(un / ud);
      report.add(String.format(Locale.ROOT, "3 AdamW steps: parameter change rel %.3e", ue));
      if (!(ue < UPDATE_TOL)) {
        failures.add("3-step update: " + ue);
      }
    }
    System.out.println("bf16 vs golden (tiny-bert) on " + be.name() + ": " + report);
    assertTrue(failures.isEmpty(), String.join("\n", failures));
    assertEquals(0, be.liveTensors(), "tensors left open");
  }
}
