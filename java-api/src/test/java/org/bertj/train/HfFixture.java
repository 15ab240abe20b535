package org.bertj.train;

import java.nio.file.Path;

/**
 * Writes a tiny model folder (tiny-bert weights, a small WordPiece tokenizer) for checks run
 * outside the test suite: scripts/make-gpu-bundle.sh fine-tunes it with {@code bertj finetune}
 * and the GPU machine checks the result with transformers (scripts/check_hf_load.py).
 * Usage: {@code HfFixture <dir>} (needs -Dbertj.golden.dir).
 */
public final class HfFixture {
  private HfFixture() {}

  public static void main(String[] args) {
    if (args.length != 1) {
      throw new IllegalArgumentException("usage: HfFixture <output dir>");
    }
    System.out.println(TinyTask.modelDir(Path.of(args[0]), 0.1));
  }
}
