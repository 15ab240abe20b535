package org.bertj.model;

import org.bertj.io.BertConfig;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.bertj.backend.Tensor;

/** Hugging Face {@code BertEncoder}: num_hidden_layers {@link BertLayer}s, {@code <prefix>.layer.<i>}. */
public final class BertEncoder {
  private final List<BertLayer> layers = new ArrayList<>();

  /** Binds to the parameters {@code <prefix>.layer.<i>.*}. */
  public BertEncoder(Parameters ps, String prefix, BertConfig c) {
    for (int i = 0; i < c.getNumHiddenLayers(); i++) {
      layers.add(new BertLayer(ps, prefix + ".layer." + i, c));
    }
  }

  static void declare(Parameters.Layout l, String prefix, BertConfig c) {
    for (int i = 0; i < c.getNumHiddenLayers(); i++) {
      BertLayer.declare(l, prefix + ".layer." + i, c);
    }
  }

  public List<BertLayer> layers() {
    return Collections.unmodifiableList(layers);
  }

  BertLayer.Activations[] activations(Arena a, int b, int t) {
    return activations(a, b, t, b * t, false);
  }

  /** Activations for n token rows (packed: padding removal, see {@link Packing}). */
  BertLayer.Activations[] activations(Arena a, int b, int t, int n, boolean packed) {
    BertLayer.Activations[] acts = new BertLayer.Activations[layers.size()];
    for (int i = 0; i < acts.length; i++) {
      acts[i] = layers.get(i).activations(a, b, t, n, packed);
    }
    return acts;
  }

  /** Runs the layers on x (N, C); returns the last layer's output (N, C). */
  Tensor forward(BertLayer.Activations[] acts, Tensor x, Tensor mask, int b, int t,
      DropoutRng rng) {
    return forward(acts, x, mask, b, t, rng, null);
  }

  /** As above; with padding removal (pk not null) x and the output have pk.n rows. */
  Tensor forward(BertLayer.Activations[] acts, Tensor x, Tensor mask, int b, int t,
      DropoutRng rng, Packing pk) {
    int n = Packing.rows(pk, b, t);
    Tensor in = x;
    Tensor inLow = null; // bf16: layer i writes layer i + 1's bf16 input
    for (int i = 0; i < layers.size(); i++) {
      Tensor outLow = i + 1 < layers.size() ? layers.get(i + 1).inputLow(n) : null;
      layers.get(i).forward(acts[i], in, inLow, mask, b, t, rng, outLow, pk);
      in = acts[i].out();
      inLow = outLow;
    }
    return in;
  }

  /** s.g: gradient of the last output on entry, of x on exit. */
  void backward(BertLayer.Activations[] acts, Tensor x, Tensor mask, BertLayer.Scratch s, int b,
      int t, DropoutRng rng) {
    backward(acts, x, mask, s, b, t, rng, null);
  }

  /** As above; with padding removal (pk not null) on pk.n rows. */
  void backward(BertLayer.Activations[] acts, Tensor x, Tensor mask, BertLayer.Scratch s, int b,
      int t, DropoutRng rng, Packing pk) {
    for (int i = layers.size() - 1; i >= 0; i--) {
      Tensor in = i == 0 ? x : acts[i - 1].out();
      layers.get(i).backward(acts[i], in, mask, s, b, t, rng, pk);
    }
  }
}
