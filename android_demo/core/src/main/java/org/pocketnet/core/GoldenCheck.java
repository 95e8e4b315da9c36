package org.pocketnet.core;

import java.util.ArrayList;
import java.util.List;

/**
 * Checks this app's code (and optionally a runtime) against a bundle's {@link GoldenSet}, the
 * procedure of {@code tflite/README.md} ("How to verify"):
 *
 * <ol>
 *   <li><b>preprocessing</b>: each golden face through {@link Preprocessor} must give the golden
 *       input tensor within {@value #INPUT_TOLERANCE} per value (the specification's tolerance);
 *       values that are not bit-identical are counted as well;
 *   <li><b>inference</b> (when an {@link Embedder} is given, e.g. LiteRT on a phone): the
 *       embedding of the golden input must reach cosine ≥ {@code min_cosine} to the
 *       stored one, with max |difference| ≤ {@code max_abs_error_relative · max|stored|}, both from the
 *       fixed per-mode table {@link GoldenSet#TOLERANCES} (never looser than golden.json's).
 * </ol>
 */
public final class GoldenCheck {
  public static final double INPUT_TOLERANCE = 1e-6;

  private GoldenCheck() {}

  /** Runs the model on one float32 input tensor and returns its embedding. */
  public interface Embedder {
    float[] embed(float[] input) throws Exception;
  }

  /** Per-image results and an overall verdict. */
  public static final class Report {
    public int images;
    /** Input values (over all images) whose float32 bits differ from the golden tensor. */
    public int inputValuesNotBitExact;
    /** Largest |Java − golden| over the input values. */
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
          "golden check: %d images, %d input values not bit-exact (max |diff| %.3g), min cosine"
              + " %.6f, max |diff| %.3g -> %s%s",
          images, inputValuesNotBitExact, inputMaxAbsDiff, minCosine, maxAbsDiff,
          passed() ? "PASS" : "FAIL", passed() ? "" : " " + failures);
    }
  }

  public static Report run(VerificationBundle bundle, GoldenSet golden, Embedder embedder) throws Exception {
    Preprocessor pre = bundle.preprocessor();
    Report r = new Report();
    r.images = golden.cases.size();
    double minCos = Double.POSITIVE_INFINITY;
    double maxDiff = 0;
    for (GoldenSet.Case c : golden.cases) {
      float[] in = pre.toInput(c.face);
      double diff = Embeddings.maxAbsDiff(in, c.input);
      r.inputMaxAbsDiff = Math.max(r.inputMaxAbsDiff, diff);
      for (int i = 0; i < in.length; i++) {
        if (Float.floatToIntBits(in[i]) != Float.floatToIntBits(c.input[i])) {
          r.inputValuesNotBitExact++;
        }
      }
      if (!(diff <= INPUT_TOLERANCE)) {
        r.failures.add(
            String.format("%s: preprocessing differs from the golden input tensor by %.3g", c.image, diff));
      }
      if (embedder != null) {
        float[] e = pre.checkEmbedding(embedder.embed(c.input));
        double cos = Embeddings.cosine(e, c.embedding);
        double err = Embeddings.maxAbsDiff(e, c.embedding);
        double limit = golden.maxAbsErrorRelative * Embeddings.maxAbs(c.embedding);
        minCos = Math.min(minCos, cos);
        maxDiff = Math.max(maxDiff, err);
        if (!(cos >= golden.minCosine && err <= limit)) {
          r.failures.add(
              String.format(
                  "%s: embedding cosine %.6f (min %.6f), max |diff| %.3g (max %.3g)",
                  c.image, cos, golden.minCosine, err, limit));
        }
      }
    }
    if (embedder != null) {
      r.minCosine = minCos;
      r.maxAbsDiff = maxDiff;
    }
    return r;
  }
}
