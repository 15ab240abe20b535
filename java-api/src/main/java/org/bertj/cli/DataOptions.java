package org.bertj.cli;

import org.bertj.backend.Device;
import org.bertj.backend.Precision;
import org.bertj.train.TextColumns;
import picocli.CommandLine.Option;

/** The options finetune, evaluate and predict share: device, batch size, length, columns. */
public final class DataOptions {
  @Option(names = "--device", paramLabel = "auto|cpu|cuda", defaultValue = "auto",
      description = "Where to compute (default: ${DEFAULT-VALUE}: CUDA when a GPU answers, else the CPU).")
  String device;

  @Option(names = "--precision", paramLabel = "auto|fp32|bf16", defaultValue = "auto",
      description = "GEMM precision (default: ${DEFAULT-VALUE}: bf16 on CUDA, i.e. bf16 GEMM inputs "
          + "with fp32 accumulation and fp32 master weights; fp32 on the CPU).")
  String precision;

  @Option(names = "--batch-size", paramLabel = "N", defaultValue = "32",
      description = "Examples per batch (default: ${DEFAULT-VALUE}).")
  int batchSize;

  @Option(names = "--max-len", paramLabel = "N", defaultValue = "128",
      description = "Most tokens per example, [CLS]/[SEP] included; longer ones are truncated and "
          + "counted (default: ${DEFAULT-VALUE}).")
  int maxLen;

  @Option(names = "--text-column", paramLabel = "NAME",
      description = "The text column (default: 'sentence', else 'text').")
  String textColumn;

  @Option(names = "--text-pair-column", paramLabel = "NAME",
      description = "The second text of a sentence pair (default: none).")
  String textPairColumn;

  @Option(names = "--label-column", paramLabel = "NAME", defaultValue = "label",
      description = "The label column (default: ${DEFAULT-VALUE}).")
  String labelColumn;

  TextColumns columns() {
    return new TextColumns(textColumn, textPairColumn, labelColumn);
  }

  Device device() {
    return Device.parse(device);
  }

  Precision precision(Device resolved) {
    return Precision.parse(precision, resolved);
  }

  void check() {
    Precision.parse(precision, Device.CPU); // a bad value fails before any work
    if (batchSize < 1) {
      throw new IllegalArgumentException("--batch-size " + batchSize + " must be at least 1");
    }
    if (maxLen < 3) {
      throw new IllegalArgumentException("--max-len " + maxLen + " must be at least 3");
    }
  }
}
