package org.bertj.backend;

import java.util.Locale;

/**
 * Numeric precision of a model's matrix multiplications.
 *
 * <ul>
 *   <li>{@link #FP32}: everything in fp32, the reference path on every backend.
 *   <li>{@link #BF16}: mixed precision. The Linear layers' GEMMs take bf16 inputs (a bf16 copy of
 *       the weights, written by each optimizer step, and the activations rounded to bf16
 *       right before each GEMM) and accumulate and write fp32. The attention core (T <= 128,
 *       head size 32 or 64) rounds q, k, v, the probabilities and, in the backward, dout and dS
 *       to bf16 for its products, with fp32 accumulation and fp32 softmax statistics
 *       ({@link Backend#attentionForwardLowp}); other shapes keep the fp32 attention. Master
 *       weights, gradients, AdamW moments, layer norm and the losses stay fp32. On CUDA the GEMMs
 *       and the attention products run on the bf16 tensor cores; the CPU backend computes the
 *       same rounding (for tests).
 * </ul>
 */
public enum Precision {
  FP32,
  BF16;

  /** "fp32" / "bf16" (any case); "auto" gives bf16 on CUDA and fp32 elsewhere. */
  public static Precision parse(String s, Device device) {
    String v = s.trim().toLowerCase(Locale.ROOT);
    return switch (v) {
      case "fp32", "float32", "f32" -> FP32;
      case "bf16", "bfloat16" -> BF16;
      case "auto" -> device == Device.CUDA ? BF16 : FP32;
      default -> throw new IllegalArgumentException(
          "unknown precision '" + s + "' (expected fp32, bf16 or auto)");
    };
  }

  /** "fp32" or "bf16". */
  public String label() {
    return name().toLowerCase(Locale.ROOT);
  }
}
