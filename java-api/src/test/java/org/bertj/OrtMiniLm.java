package org.bertj;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Map;
import org.bertj.io.EncodingBatch;
import org.bertj.io.MiniLmConverter;

/** ONNX Runtime Java on the all-MiniLM-L6-v2 ONNX of the langchain4j jar: the reference. */
final class OrtMiniLm implements AutoCloseable {
  private final OrtEnvironment env = OrtEnvironment.getEnvironment();
  private final OrtSession session;

  OrtMiniLm() throws OrtException {
    byte[] bytes;
    try (InputStream in = OrtMiniLm.class.getClassLoader()
        .getResourceAsStream(MiniLmConverter.ONNX_RESOURCE)) {
      if (in == null) {
        throw new IllegalStateException(MiniLmConverter.ONNX_RESOURCE + " not on the class path");
      }
      bytes = in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    OrtSession.SessionOptions o = new OrtSession.SessionOptions();
    o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
    session = env.createSession(bytes, o);
  }

  /** last_hidden_state (B*T*C, row-major) of a padded batch. */
  float[] lastHiddenState(EncodingBatch b) throws OrtException {
    long[] shape = {b.batchSize(), b.seqLen()};
    try (OnnxTensor ids = OnnxTensor.createTensor(env, java.nio.LongBuffer.wrap(longs(b.inputIds())), shape);
        OnnxTensor mask = OnnxTensor.createTensor(env, java.nio.LongBuffer.wrap(longs(b.attentionMask())), shape);
        OnnxTensor types = OnnxTensor.createTensor(env, java.nio.LongBuffer.wrap(longs(b.tokenTypeIds())), shape);
        OrtSession.Result r = session.run(
            Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types))) {
      OnnxTensor out = (OnnxTensor) r.get(0);
      java.nio.FloatBuffer fb = out.getFloatBuffer();
      float[] v = new float[fb.remaining()];
      fb.get(v);
      return v;
    }
  }

  private static long[] longs(int[] a) {
    long[] l = new long[a.length];
    for (int i = 0; i < a.length; i++) {
      l[i] = a[i];
    }
    return l;
  }

  @Override
  public void close() throws OrtException {
    session.close();
  }
}
