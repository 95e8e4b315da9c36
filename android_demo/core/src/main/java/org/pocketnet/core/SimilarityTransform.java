package org.pocketnet.core;

/**
 * A 2-D similarity transform (uniform scale, rotation, translation; no reflection):
 *
 * <pre>
 *   x' = a·x − b·y + tx
 *   y' = b·x + a·y + ty
 * </pre>
 *
 * <p>{@link #estimate} fits it to point correspondences by least squares — the same minimiser as
 * Umeyama's method (scikit-image's {@code SimilarityTransform.estimate}, used by insightface's
 * alignment), written in its closed form for 2-D. The arithmetic is that of
 * {@code pocketnet_tf.data.align.estimate_similarity} / {@code invert_similarity}, operation for
 * operation: coordinates rounded to float32 first (as the Python side stores them), then IEEE
 * double, left to right, no fused multiply-add — so both sides produce the same bits.
 */
public final class SimilarityTransform {
  public final double a;
  public final double b;
  public final double tx;
  public final double ty;

  public SimilarityTransform(double a, double b, double tx, double ty) {
    this.a = a;
    this.b = b;
    this.tx = tx;
    this.ty = ty;
  }

  /**
   * Least-squares similarity mapping {@code src[i]} onto {@code dst[i]} ({@code {x, y}} pairs).
   *
   * <p>With the centred points {@code s = src − mean(src)}, {@code d = dst − mean(dst)}:
   * {@code a = Σ(sx·dx + sy·dy) / Σ(sx² + sy²)}, {@code b = Σ(sx·dy − sy·dx) / Σ(sx² + sy²)}, and
   * the translation maps {@code mean(src)} onto {@code mean(dst)}.
   *
   * @throws IllegalArgumentException on fewer than two points, mismatched counts, non-finite
   *     coordinates, or all source points coinciding.
   */
  public static SimilarityTransform estimate(double[][] src, double[][] dst) {
    int n = src.length;
    if (n != dst.length) {
      throw new IllegalArgumentException(
          "need as many source as destination points, got " + n + " and " + dst.length);
    }
    if (n < 2) {
      throw new IllegalArgumentException("a similarity transform needs at least 2 points, got " + n);
    }
    double sxMean = 0;
    double syMean = 0;
    double dxMean = 0;
    double dyMean = 0;
    for (int i = 0; i < n; i++) {
      if (src[i].length != 2 || dst[i].length != 2) {
        throw new IllegalArgumentException("point " + i + " must have 2 coordinates");
      }
      for (int k = 0; k < 2; k++) {
        if (!Double.isFinite(src[i][k]) || !Double.isFinite(dst[i][k])) {
          throw new IllegalArgumentException("point " + i + " has a non-finite coordinate");
        }
      }
      sxMean += f32(src[i][0]);
      syMean += f32(src[i][1]);
      dxMean += f32(dst[i][0]);
      dyMean += f32(dst[i][1]);
    }
    sxMean /= n;
    syMean /= n;
    dxMean /= n;
    dyMean /= n;
    double dot = 0;
    double cross = 0;
    double norm = 0;
    for (int i = 0; i < n; i++) {
      double sx = f32(src[i][0]) - sxMean;
      double sy = f32(src[i][1]) - syMean;
      double dx = f32(dst[i][0]) - dxMean;
      double dy = f32(dst[i][1]) - dyMean;
      dot += sx * dx + sy * dy;
      cross += sx * dy - sy * dx;
      norm += sx * sx + sy * sy;
    }
    if (!(norm > 0)) {
      throw new IllegalArgumentException("source points coincide: the transform is undefined");
    }
    double a = dot / norm;
    double b = cross / norm;
    double tx = dxMean - (a * sxMean - b * syMean);
    double ty = dyMean - (b * sxMean + a * syMean);
    return new SimilarityTransform(a, b, tx, ty);
  }

  /** Rounds to float32 and widens back: the Python side stores landmarks as float32. */
  private static double f32(double v) {
    return (double) (float) v;
  }

  /** The 2x3 affine matrix {@code [[a, −b, tx], [b, a, ty]]}, row-major. */
  public double[] toAffine() {
    return new double[] {a, -b, tx, b, a, ty};
  }

  public double scale() {
    return Math.hypot(a, b);
  }

  /** Rotation angle in radians (counter-clockwise in a y-up frame). */
  public double rotation() {
    return Math.atan2(b, a);
  }

  /** Maps a point: {@code x' = (a·x + (−b)·y) + tx}, {@code y' = (b·x + a·y) + ty}. */
  public double[] apply(double x, double y) {
    return new double[] {(a * x + (-b) * y) + tx, (b * x + a * y) + ty};
  }

  /**
   * The inverse transform (a similarity too), computed as the Python side does: {@code k = a·a +
   * b·b}, {@code ia = a/k}, {@code ib = b/k}, {@code itx = −(ia·tx + ib·ty)}, {@code ity = −(ia·ty −
   * ib·tx)}; it maps {@code (u, v)} to {@code x = (ia·u + ib·v) + itx}, {@code y = (ia·v − ib·u) +
   * ity}, i.e. the similarity with parameters {@code (ia, −ib, itx, ity)}.
   */
  public SimilarityTransform inverse() {
    double k = a * a + b * b;
    if (!(k > 0)) {
      throw new IllegalStateException("a zero-scale transform has no inverse");
    }
    double ia = a / k;
    double ib = b / k;
    double itx = -(ia * tx + ib * ty);
    double ity = -(ia * ty - ib * tx);
    return new SimilarityTransform(ia, -ib, itx, ity);
  }

  @Override
  public String toString() {
    return String.format(
        "SimilarityTransform[a=%.9g, b=%.9g, tx=%.9g, ty=%.9g]", a, b, tx, ty);
  }
}
