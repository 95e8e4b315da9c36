package org.pocketnet.core;

import java.util.Locale;

/**
 * The bundle's metadata side-car, parsed and checked. This is the one class that knows the JSON
 * layout written by the converter ({@code pocketnet_tf.export}); everything else uses its
 * fields.
 */
public final class BundleMetadata {
  /** Tensor element types the app can feed or read. */
  public enum DType {
    FLOAT32,
    INT8,
    UINT8;

    static DType parse(JsonObject o, String key) {
      String s = o.getString(key);
      switch (s.toLowerCase(Locale.ROOT)) {
        case "float32":
          return FLOAT32;
        case "int8":
          return INT8;
        case "uint8":
          return UINT8;
        default:
          throw o.invalid(key, "must be float32, int8 or uint8, got \"" + s + "\"");
      }
    }
  }

  /** Affine quantisation {@code real = scale · (q − zeroPoint)}. */
  public static final class Quantization {
    public final double scale;
    public final int zeroPoint;

    public Quantization(double scale, int zeroPoint) {
      this.scale = scale;
      this.zeroPoint = zeroPoint;
    }
  }

  public final String source;
  public final String modelFile;
  public final String modelSha256;
  public final int inputHeight;
  public final int inputWidth;
  public final DType inputDType;
  /** {@code x_norm = (x − mean) / std}, computed as {@code x/std − mean/std} (see Preprocessor). */
  public final double normMean;

  public final double normStd;
  /** Null for a float input. */
  public final Quantization inputQuantization;

  public final int embeddingSize;
  public final DType outputDType;
  /** Null for a float output. */
  public final Quantization outputQuantization;
  /** Whether the model's output is already L2-normalised. */
  public final boolean outputL2Normalized;

  /** {@code [5][2]} template points in crop pixels. */
  public final double[][] alignmentTemplate;

  public final double threshold;
  public final double thresholdFar;
  public final String metric;

  /** Golden vectors, or null when the bundle ships none. */
  public final Golden golden;

  /** Where the golden vectors live in the bundle and how close a runtime must come. */
  public static final class Golden {
    /** {@code uint8 [N, H, W, 3]} aligned crops. */
    public final String images;
    /** The exact input tensors fed: {@code float32 or int8/uint8 [N, H, W, 3]}. */
    public final String inputs;
    /** The exact model outputs (dequantised float32) {@code [N, D]}. */
    public final String embeddings;
    /** Minimum cosine between a runtime's embedding and the golden one. */
    public final double minCosine;
    /** Maximum absolute element difference allowed. */
    public final double maxAbsDiff;

    Golden(String images, String inputs, String embeddings, double minCosine, double maxAbsDiff) {
      this.images = images;
      this.inputs = inputs;
      this.embeddings = embeddings;
      this.minCosine = minCosine;
      this.maxAbsDiff = maxAbsDiff;
    }
  }

  private BundleMetadata(JsonObject root) {
    source = root.source();
    String format = root.getString("format");
    if (!"pocketnet_tf.bundle".equals(format)) {
      throw root.invalid("format", "must be \"pocketnet_tf.bundle\", got \"" + format + "\"");
    }
    int version = root.getInt("version");
    if (version != 1) {
      throw root.invalid("version", "is " + version + "; this app reads version 1");
    }
    JsonObject model = root.getObject("model");
    modelFile = model.getString("file");
    if (modelFile.contains("/") || modelFile.contains("\\") || modelFile.startsWith(".")) {
      throw model.invalid("file", "must be a plain file name inside the bundle, got \"" + modelFile + "\"");
    }
    modelSha256 = model.getString("sha256").toLowerCase(Locale.ROOT);
    if (!modelSha256.matches("[0-9a-f]{64}")) {
      throw model.invalid("sha256", "must be 64 hex digits");
    }

    JsonObject input = root.getObject("input");
    int[] shape = input.getIntArray("shape", 4);
    if (shape[0] != 1 || shape[3] != 3 || shape[1] <= 0 || shape[2] <= 0) {
      throw input.invalid("shape", "must be [1, H, W, 3] (batch 1, NHWC RGB)");
    }
    String layout = input.getString("layout");
    if (!"NHWC".equals(layout)) {
      throw input.invalid("layout", "must be NHWC, got \"" + layout + "\"");
    }
    String color = input.optString("color", "RGB");
    if (!"RGB".equals(color)) {
      throw input.invalid("color", "must be RGB, got \"" + color + "\"");
    }
    inputHeight = shape[1];
    inputWidth = shape[2];
    inputDType = DType.parse(input, "dtype");
    JsonObject norm = input.getObject("normalization");
    normMean = norm.getDouble("mean");
    normStd = norm.getDouble("std");
    if (!(normStd > 0)) {
      throw norm.invalid("std", "must be positive");
    }
    inputQuantization = quantization(input, inputDType);

    JsonObject output = root.getObject("output");
    embeddingSize = output.getInt("embedding_size");
    if (embeddingSize <= 0) {
      throw output.invalid("embedding_size", "must be positive");
    }
    outputDType = DType.parse(output, "dtype");
    if (outputDType == DType.UINT8) {
      throw output.invalid("dtype", "uint8 outputs are not supported");
    }
    outputQuantization = quantization(output, outputDType);
    outputL2Normalized = output.getBoolean("l2_normalized");

    JsonObject alignment = root.getObject("alignment");
    alignmentTemplate = alignment.getMatrix("template", 5, 2);
    int[] crop = alignment.getIntArray("image_size", 2);
    if (crop[0] != inputHeight || crop[1] != inputWidth) {
      throw alignment.invalid(
          "image_size", "must equal the model input size " + inputHeight + "x" + inputWidth);
    }

    JsonObject verification = root.getObject("verification");
    metric = verification.getString("metric");
    if (!"cosine".equals(metric)) {
      throw verification.invalid("metric", "must be \"cosine\", got \"" + metric + "\"");
    }
    threshold = verification.getDouble("threshold");
    if (!(threshold >= -1 && threshold <= 1)) {
      throw verification.invalid("threshold", "must be a cosine in [-1, 1], got " + threshold);
    }
    thresholdFar = verification.getDouble("far");

    JsonObject g = root.optObject("golden");
    if (g == null) {
      golden = null;
    } else {
      JsonObject tol = g.getObject("tolerance");
      golden =
          new Golden(
              relativePath(g, "images"),
              relativePath(g, "inputs"),
              relativePath(g, "embeddings"),
              tol.getDouble("min_cosine"),
              tol.getDouble("max_abs_diff"));
    }
  }

  private static Quantization quantization(JsonObject tensor, DType dtype) {
    JsonObject q = tensor.optObject("quantization");
    if (dtype == DType.FLOAT32) {
      if (q != null) {
        throw tensor.invalid("quantization", "must be null for a float32 tensor");
      }
      return null;
    }
    if (q == null) {
      throw tensor.invalid("quantization", "is required for a " + dtype + " tensor");
    }
    double scale = q.getDouble("scale");
    if (!(scale > 0) || Double.isInfinite(scale)) {
      throw q.invalid("scale", "must be a positive number, got " + scale);
    }
    int zp = q.getInt("zero_point");
    int lo = dtype == DType.INT8 ? -128 : 0;
    if (zp < lo || zp > lo + 255) {
      throw q.invalid("zero_point", "is outside the " + dtype + " range: " + zp);
    }
    return new Quantization(scale, zp);
  }

  private static String relativePath(JsonObject o, String key) {
    String p = o.getString(key);
    if (p.startsWith("/") || p.contains("..") || p.contains("\\")) {
      throw o.invalid(key, "must be a relative path inside the bundle, got \"" + p + "\"");
    }
    return p;
  }

  /** Parses the metadata JSON text; {@code source} names the file in errors. */
  public static BundleMetadata parse(String json, String source) {
    return new BundleMetadata(Json.parseObject(json, source));
  }
}
