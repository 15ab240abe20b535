package org.bertj.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.bertj.backend.Backend;
import org.bertj.io.BertTokenizer;
import org.bertj.model.BertForSequenceClassification;
import org.bertj.train.Evaluation;
import org.bertj.train.Examples;
import org.bertj.train.LabelSpace;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code bertj evaluate}: metrics of a fine-tuned model on a labelled file. */
@Command(name = "evaluate", mixinStandardHelpOptions = true, sortOptions = false,
    description = {"Evaluates a fine-tuned model (a folder written by finetune, or any Hugging "
        + "Face BertForSequenceClassification folder) on a labelled file and prints one JSON "
        + "object: accuracy, macro_f1, loss, n (regression: mse, pearson, loss, n)."})
public final class EvaluateCommand implements Callable<Integer> {
  @Option(names = "--model", paramLabel = "DIR", required = true,
      description = "The fine-tuned model folder.")
  Path model;

  @Option(names = "--data", paramLabel = "FILE", required = true,
      description = "Labelled data (.tsv, .csv, .jsonl).")
  Path data;

  @Mixin DataOptions opts;

  @Override
  public Integer call() {
    opts.check();
    try (Loaded m = Loaded.open(model, opts)) {
      Examples ex = Examples.encode(Examples.read(data), opts.columns(), m.tokenizer, m.maxLen,
          m.labels, -1);
      if (ex.truncated() > 0) {
        System.err.println("bertj: " + ex.truncated() + " examples were truncated to " + m.maxLen
            + " tokens");
      }
      Evaluation ev = Evaluation.run(m.model, ex, opts.batchSize);
      System.out.println(Json.line(FinetuneCommand.withTruncated(ev, ex.truncated())));
    }
    return 0;
  }

  /** A fine-tuned model with its tokenizer and labels. */
  static final class Loaded implements AutoCloseable {
    final Backend be;
    final BertTokenizer tokenizer;
    final BertForSequenceClassification model;
    final LabelSpace labels;
    final int maxLen;

    private Loaded(Backend be, BertTokenizer tokenizer, BertForSequenceClassification model,
        int maxLen) {
      this.be = be;
      this.tokenizer = tokenizer;
      this.model = model;
      this.labels = LabelSpace.fromConfig(model.config());
      this.maxLen = Math.min(maxLen, model.config().getMaxPositionEmbeddings());
    }

    static Loaded open(Path dir, DataOptions opts) {
      Backend be = Backend.create(opts.device());
      BertTokenizer tok = null;
      try {
        tok = BertTokenizer.forModel(dir);
        BertForSequenceClassification m = BertForSequenceClassification.fromPretrained(be, dir, 0L);
        m.parameters().setPrecision(opts.precision(be.device()));
        return new Loaded(be, tok, m, opts.maxLen);
      } catch (RuntimeException | Error e) {
        if (tok != null) {
          tok.close();
        }
        be.close();
        throw e;
      }
    }

    @Override
    public void close() {
      try {
        model.close();
        tokenizer.close();
      } finally {
        be.close();
      }
    }
  }
}
