package org.pocketnet.core;

/**
 * Aligned 8-bit RGB crop → the float32 model input tensor (NHWC, row-major: pixel (y, x) channel
 * c at {@code (y·W + x)·3 + c}), as the bundle metadata states it: {@code x = (pixel − mean) /
 * std} per channel.
 *
 * <p>Computed as {@code pixel / std − mean / std} with {@code std} and {@code mean / std} rounded to
 * float32 and float32 arithmetic — the operation order of {@code
 * pocketnet_tf.data.preprocess.normalize} ({@code x / 127.5 − 1}), which wrote the golden input
 * tensors of a default bundle, so they are reproduced bit for bit; for a {@code --raw_input}
 * bundle ({@code mean 0, std 1}) it is the pixel value exactly. Any other {@code mean}/{@code std}
 * stays within one float32 rounding of {@code (pixel − mean) / std}, inside the bundle
 * specification's 1e-6 input tolerance.
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

  /** The model input for an aligned crop of the model's input size. */
  public float[] toInput(RgbImage crop) {
    if (crop.width != meta.inputWidth || crop.height != meta.inputHeight) {
      throw new IllegalArgumentException(
          "crop is " + crop.width + "x" + crop.height + ", the model takes " + meta.inputWidth + "x"
              + meta.inputHeight);
    }
    float[] out = new float[crop.rgb.length];
    for (int i = 0; i < out.length; i++) {
      out[i] = (float) (crop.rgb[i] & 0xff) / std - meanOverStd;
    }
    return out;
  }

  /** Checks the model's output length against the bundle's {@code embedding_size}. */
  public float[] checkEmbedding(float[] output) {
    if (output.length != meta.embeddingSize) {
      throw new IllegalArgumentException(
          "model returned " + output.length + " values, the bundle declares embedding_size "
              + meta.embeddingSize);
    }
    return output;
  }
}
