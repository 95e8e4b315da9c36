package org.pocketnet.core;

import java.util.Locale;

/**
 * The bundle's {@code metadata.json} (schema {@value #SCHEMA}, written by {@code python -m
 * pocketnet_tf.convert}; specified in {@code tflite/README.md}), parsed and checked. This is the
 * one class that knows that JSON layout; everything else uses its fields.
 *
 * <p>The converter keeps float32 input and output in every mode (int8 models quantise inside the
 * graph), so a tensor that is not float32 or carries quantisation parameters is refused: this app
 * would feed it wrongly.
 */
public final class BundleMetadata {
  public static final String SCHEMA = "pocketnet_tf.tflite_metadata/1";

  public final String source;
  public final String modelFile;
  public final String modelSha256;
  /** Export mode ({@code fp32}, {@code fp16}, {@code dynamic}, {@code int8}, {@code int16x8}). */
  public final String mode;

  public final int inputHeight;
  public final int inputWidth;
  /** The app feeds {@code x = (pixel − mean) / std} per channel (see {@link Preprocessor}). */
  public final double normMean;

  public final double normStd;

  public final int embeddingSize;
  /** Whether the model's output is already L2-normalised. */
  public final boolean outputL2Normalized;

  /** {@code [5][2]} template points in crop pixels. */
  public final double[][] alignmentTemplate;

  /**
   * Cosine decision threshold ({@code verification.threshold}), or NaN when the bundle was
   * exported without a verification set ({@code "verification": null}); see {@link
   * #hasThreshold()}.
   */
  public final double threshold;
  /** The FAR the threshold was calibrated for ({@code verification.far_target}), or NaN. */
  public final double farTarget;

  /** SHA-256 of the bundle's {@code manifest.json} ({@code bundle.manifest_sha256}): the seal. */
  public final String manifestSha256;

  private BundleMetadata(JsonObject root) {
    source = root.source();
    String schema = root.getString("schema");
    if (!SCHEMA.equals(schema)) {
      throw root.invalid("schema", "is \"" + schema + "\"; this app reads \"" + SCHEMA + "\"");
    }
    JsonObject model = root.getObject("model");
    modelFile = model.getString("file");
    if (modelFile.isEmpty() || modelFile.contains("/") || modelFile.contains("\\") || modelFile.startsWith(".")) {
      throw model.invalid("file", "must be a plain file name inside the bundle, got \"" + modelFile + "\"");
    }
    modelSha256 = model.getString("sha256").toLowerCase(Locale.ROOT);
    if (!modelSha256.matches("[0-9a-f]{64}")) {
      throw model.invalid("sha256", "must be 64 hex digits");
    }
    mode = model.getString("mode");
    if (!GoldenSet.TOLERANCES.containsKey(mode)) {
      throw model.invalid("mode", "\"" + mode + "\" is not one of " + GoldenSet.TOLERANCES.keySet());
    }

    JsonObject input = root.getObject("input");
    int[] shape = input.getIntArray("shape", 4);
    if (shape[0] != 1 || shape[3] != 3 || shape[1] <= 0 || shape[2] <= 0) {
      throw input.invalid(
          "shape", "must be [1, H, W, 3] (static batch 1, NHWC RGB; export without --dynamic_batch)");
    }
    expectString(input, "layout", "NHWC");
    expectString(input, "color", "RGB");
    floatTensor(input);
    inputHeight = shape[1];
    inputWidth = shape[2];
    if (input.getInt("height") != inputHeight || input.getInt("width") != inputWidth) {
      throw input.invalid("height", "and 'width' must equal input.shape " + inputHeight + "x" + inputWidth);
    }
    JsonObject norm = input.getObject("normalization");
    normMean = norm.getDouble("mean");
    normStd = norm.getDouble("std");
    if (!(normStd > 0) || Double.isInfinite(normStd)) {
      throw norm.invalid("std", "must be a positive number, got " + normStd);
    }

    JsonObject output = root.getObject("output");
    floatTensor(output);
    embeddingSize = output.getInt("embedding_size");
    int[] outShape = output.getIntArray("shape", 2);
    if (embeddingSize <= 0 || outShape[0] != 1 || outShape[1] != embeddingSize) {
      throw output.invalid("embedding_size", "must be positive and match output.shape [1, D]");
    }
    outputL2Normalized = output.getBoolean("l2_normalized");

    JsonObject alignment = root.getObject("alignment");
    alignmentTemplate = alignment.getMatrix("template", 5, 2);
    int[] crop = alignment.getIntArray("output_size", 2);
    if (crop[0] != inputHeight || crop[1] != inputWidth) {
      throw alignment.invalid(
          "output_size", "must equal the model input size " + inputHeight + "x" + inputWidth);
    }

    JsonObject verification = root.getObjectOrNull("verification");
    if (verification == null) {
      threshold = Double.NaN;
      farTarget = Double.NaN;
    } else {
      expectString(verification, "metric", "cosine");
      threshold = verification.getDouble("threshold");
      if (!(threshold >= -1 && threshold <= 1)) {
        throw verification.invalid("threshold", "must be a cosine in [-1, 1], got " + threshold);
      }
      farTarget = verification.getDouble("far_target");
    }

    JsonObject seal = root.getObject("bundle");
    expectString(seal, "manifest", BundleSeal.MANIFEST_FILE);
    manifestSha256 = seal.getString("manifest_sha256");
    if (!BundleSeal.isHex64(manifestSha256)) {
      throw seal.invalid("manifest_sha256", "must be 64 lowercase hex digits");
    }
  }

  /** Whether the bundle states a decision threshold (it was exported with {@code --bin}). */
  public boolean hasThreshold() {
    return !Double.isNaN(threshold);
  }

  private static void expectString(JsonObject o, String key, String expected) {
    String s = o.getString(key);
    if (!expected.equals(s)) {
      throw o.invalid(key, "must be \"" + expected + "\", got \"" + s + "\"");
    }
  }

  private static void floatTensor(JsonObject tensor) {
    expectString(tensor, "dtype", "float32");
    if (tensor.getObjectOrNull("quantization") != null) {
      throw tensor.invalid(
          "quantization", "must be null: this app feeds and reads float32 tensors only");
    }
  }

  /** Parses the metadata JSON text; {@code source} names the file in errors. */
  public static BundleMetadata parse(String json, String source) {
    return new BundleMetadata(Json.parseObject(json, source));
  }
}
