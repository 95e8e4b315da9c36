package org.pocketnet.core;

/**
 * Aligned 8-bit RGB crop → model input tensor, exactly as the bundle metadata says and as the
 * Python side computes it (float32 arithmetic, same operation order):
 *
 * <ul>
 *   <li>normalisation {@code x / std − mean / std} with {@code std} and {@code mean / std} rounded
 *       to float32 — {@code pocketnet_tf.data.preprocess.normalize} ({@code x / 127.5 − 1});
 *   <li>quantised inputs: {@code q = clip(rint(x_norm / scale) + zero_point)}, the division in
 *       float32 and {@code rint} rounding half to even — {@code np.round} as in
 *       {@code pocketnet_tf.eval.embedders.TFLiteEmbedder}.
 * </ul>
 */
public final class Preprocessor {
  private final BundleMetadata meta;
  private final float std;
  private final float meanOverStd;

  public Preprocessor(BundleMetadata meta) {
    this.meta = meta;
    this.std = (float) meta.normStd;
    this.meanOverStd = (float) (meta.normMean / meta.normStd);
  }

  /** The normalised float pixels (before any quantisation). */
  public float[] normalize(RgbImage crop) {
    checkSize(crop);
    float[] out = new float[crop.rgb.length];
    for (int i = 0; i < out.length; i++) {
      out[i] = (float) (crop.rgb[i] & 0xff) / std - meanOverStd;
    }
    return out;
  }

  public ModelInput toInput(RgbImage crop) {
    float[] x = normalize(crop);
    if (meta.inputDType == BundleMetadata.DType.FLOAT32) {
      return ModelInput.ofFloats(x);
    }
    float scale = (float) meta.inputQuantization.scale;
    int zp = meta.inputQuantization.zeroPoint;
    int lo = meta.inputDType == BundleMetadata.DType.INT8 ? -128 : 0;
    int hi = lo + 255;
    byte[] q = new byte[x.length];
    for (int i = 0; i < x.length; i++) {
      double r = Math.rint(x[i] / scale) + zp;
      int v = r < lo ? lo : r > hi ? hi : (int) r;
      q[i] = (byte) v;
    }
    return ModelInput.ofBytes(meta.inputDType, q);
  }

  private void checkSize(RgbImage crop) {
    if (crop.width != meta.inputWidth || crop.height != meta.inputHeight) {
      throw new IllegalArgumentException(
          "crop is " + crop.width + "x" + crop.height + ", the model takes " + meta.inputWidth + "x"
              + meta.inputHeight);
    }
  }

  /** The model output as a float embedding (dequantised when the output is int8). */
  public float[] outputToEmbedding(float[] floats, byte[] bytes) {
    float[] e;
    if (meta.outputDType == BundleMetadata.DType.FLOAT32) {
      e = floats;
    } else {
      e = Embeddings.dequantize(bytes, meta.outputQuantization.scale, meta.outputQuantization.zeroPoint);
    }
    if (e.length != meta.embeddingSize) {
      throw new IllegalArgumentException(
          "model returned " + e.length + " values, the bundle declares embedding_size "
              + meta.embeddingSize);
    }
    return e;
  }
}
