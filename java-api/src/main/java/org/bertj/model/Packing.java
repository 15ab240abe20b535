package org.bertj.model;

import org.bertj.backend.Tensor;

/**
 * Padding removal of one forward ({@link BertModel}): the encoder's token-wise ops run on the n
 * real tokens only. idx (n, I32) holds each real token's padded row b*T + t in row-major (b, t)
 * order, inv (B*T, I32) each padded row's packed row or -1 (a pad): {@code gatherRows} with idx
 * packs a padded tensor, with inv unpacks a packed one (pad rows zero). The attention core stays
 * on the padded layout (gather in, gather out).
 */
final class Packing {
  /** Real tokens: the rows of every packed tensor. */
  final int n;
  /** (n) padded row of each packed row. */
  final Tensor idx;
  /** (B*T) packed row of each padded row, -1 for a pad. */
  final Tensor inv;

  Packing(int n, Tensor idx, Tensor inv) {
    this.n = n;
    this.idx = idx;
    this.inv = inv;
  }

  /** Rows the token-wise ops run on: n when packed (pk not null), else B*T. */
  static int rows(Packing pk, int b, int t) {
    return pk == null ? b * t : pk.n;
  }
}
