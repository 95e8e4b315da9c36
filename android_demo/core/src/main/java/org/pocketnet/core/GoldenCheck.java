package org.pocketnet.core;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Checks a runtime against the bundle's golden vectors:
 *
 * <ol>
 *   <li><b>preprocessing</b>: each golden aligned crop, through {@link Preprocessor}, must give
 *       exactly the golden input tensor (bit for bit — quantised bytes and float32 values);
 *   <li><b>inference</b> (when an {@link Embedder} is given, e.g. LiteRT on a phone): the
 *       embedding of the golden input must be within the bundle's tolerance of the golden
 *       embedding (cosine ≥ {@code min_cosine}, max |difference| ≤ {@code max_abs_diff}).
 * </ol>
 */
public final class GoldenCheck {
  private GoldenCheck() {}

  /** Runs the model on one input and returns its (dequantised) embedding. */
  public interface Embedder {
    float[] embed(ModelInput input) throws Exception;
  }

  /** Per-image results and an overall verdict. */
  public static final class Report {
    public int images;
    public int inputMismatches;
    /** Largest |Java − golden| over the float input values (0 for quantised inputs). */
    public double inputMaxAbsDiff;

    public double minCosine = Double.NaN;
    public double maxAbsDiff = Double.NaN;
    public final List<String> failures = new ArrayList<>();

    public boolean passed() {
      return failures.isEmpty();
    }

    @Override
    public String toString() {
      return String.format(
          "golden check: %d images, %d input mismatches (max |diff| %.3g), min cosine %.6f,"
              + " max |diff| %.3g -> %s%s",
          images, inputMismatches, inputMaxAbsDiff, minCosine, maxAbsDiff,
          passed() ? "PASS" : "FAIL", passed() ? "" : " " + failures);
    }
  }

  public static Report run(VerificationBundle bundle, Embedder embedder) throws Exception {
    BundleMetadata meta = bundle.metadata;
    if (meta.golden == null) {
      throw new IOException(bundle.dir + ": the bundle has no golden vectors");
    }
    NpyArray images = bundle.readGolden(meta.golden.images);
    NpyArray inputs = bundle.readGolden(meta.golden.inputs);
    NpyArray embeddings = bundle.readGolden(meta.golden.embeddings);
    int h = meta.inputHeight;
    int w = meta.inputWidth;
    int d = meta.embeddingSize;
    int n = images.shape.length > 0 ? images.shape[0] : 0;
    expectShape(images, new int[] {n, h, w, 3}, meta.golden.images);
    expectShape(inputs, new int[] {n, h, w, 3}, meta.golden.inputs);
    expectShape(embeddings, new int[] {n, d}, meta.golden.embeddings);
    if (images.dtype != NpyArray.DType.UINT8) {
      throw new IllegalArgumentException(meta.golden.images + ": golden images must be uint8");
    }
    NpyArray.DType expectedInput =
        meta.inputDType == BundleMetadata.DType.FLOAT32
            ? NpyArray.DType.FLOAT32
            : meta.inputDType == BundleMetadata.DType.INT8 ? NpyArray.DType.INT8 : NpyArray.DType.UINT8;
    if (inputs.dtype != expectedInput) {
      throw new IllegalArgumentException(
          meta.golden.inputs + ": dtype " + inputs.dtype.descr + ", the model input is " + meta.inputDType);
    }
    Preprocessor pre = bundle.preprocessor();
    byte[] allPixels = images.toByteArray();
    float[] goldenFloats = expectedInput == NpyArray.DType.FLOAT32 ? inputs.toFloatArray() : null;
    byte[] goldenBytes = expectedInput == NpyArray.DType.FLOAT32 ? null : inputs.toByteArray();
    float[] goldenEmb = embeddings.toFloatArray();
    int per = h * w * 3;
    Report r = new Report();
    r.images = n;
    double minCos = Double.POSITIVE_INFINITY;
    double maxDiff = 0;
    for (int i = 0; i < n; i++) {
      RgbImage crop = new RgbImage(w, h, Arrays.copyOfRange(allPixels, i * per, (i + 1) * per));
      ModelInput in = pre.toInput(crop);
      boolean same;
      if (goldenFloats != null) {
        float[] g = Arrays.copyOfRange(goldenFloats, i * per, (i + 1) * per);
        r.inputMaxAbsDiff = Math.max(r.inputMaxAbsDiff, Embeddings.maxAbsDiff(in.floats, g));
        same = bitsEqual(in.floats, g);
      } else {
        same = Arrays.equals(in.bytes, Arrays.copyOfRange(goldenBytes, i * per, (i + 1) * per));
      }
      if (!same) {
        r.inputMismatches++;
        r.failures.add("image " + i + ": preprocessing differs from the golden input tensor");
      }
      if (embedder != null) {
        float[] e = embedder.embed(in);
        float[] g = Arrays.copyOfRange(goldenEmb, i * d, (i + 1) * d);
        double cos = Embeddings.cosine(e, g);
        double diff = Embeddings.maxAbsDiff(e, g);
        minCos = Math.min(minCos, cos);
        maxDiff = Math.max(maxDiff, diff);
        if (cos < meta.golden.minCosine || diff > meta.golden.maxAbsDiff) {
          r.failures.add(
              String.format(
                  "image %d: embedding cosine %.6f (min %.6f), max |diff| %.3g (max %.3g)",
                  i, cos, meta.golden.minCosine, diff, meta.golden.maxAbsDiff));
        }
      }
    }
    if (embedder != null && n > 0) {
      r.minCosine = minCos;
      r.maxAbsDiff = maxDiff;
    }
    if (n == 0) {
      r.failures.add("the bundle's golden set is empty");
    }
    return r;
  }

  private static boolean bitsEqual(float[] a, float[] b) {
    if (a.length != b.length) {
      return false;
    }
    for (int i = 0; i < a.length; i++) {
      if (Float.floatToIntBits(a[i]) != Float.floatToIntBits(b[i])) {
        return false;
      }
    }
    return true;
  }

  private static void expectShape(NpyArray a, int[] shape, String name) {
    if (!Arrays.equals(a.shape, shape)) {
      throw new IllegalArgumentException(
          name + ": shape " + Arrays.toString(a.shape) + ", expected " + Arrays.toString(shape));
    }
  }
}
