package org.pocketnet.core;

/**
 * Bilinear similarity warp of an RGB image, reproducing {@code
 * pocketnet_tf.data.align.warp_affine} bit for bit.
 *
 * <p>Convention: pixel centres at integer coordinates (pixel (0, 0) covers [−0.5, 0.5]², as in
 * OpenCV and the landmark files). For output pixel (column {@code u}, row {@code v}) with the
 * inverse similarity {@code (ia, ib, itx, ity)} (see {@link SimilarityTransform#inverse}):
 *
 * <pre>
 *   x = (ia·u + ib·v) + itx          y = (ia·v − ib·u) + ity
 *   x0 = floor(x), y0 = floor(y), fx = x − x0, fy = y − y0
 *   P(i, j) = source pixel (column i, row j), or 0 outside the image
 *   top    = (1 − fx)·P(x0, y0)     + fx·P(x0 + 1, y0)
 *   bottom = (1 − fx)·P(x0, y0 + 1) + fx·P(x0 + 1, y0 + 1)
 *   value  = (1 − fy)·top + fy·bottom
 *   out    = min(255, max(0, floor(value + 0.5)))
 * </pre>
 *
 * all in IEEE double, left to right, no fused multiply-add (Java never fuses without {@code
 * Math.fma}).
 */
public final class AffineWarp {
  private AffineWarp() {}

  /**
   * Warps {@code src} with the forward similarity {@code srcToDst} into an {@code outWidth x
   * outHeight} image.
   */
  public static RgbImage warp(RgbImage src, SimilarityTransform srcToDst, int outWidth, int outHeight) {
    if (outWidth <= 0 || outHeight <= 0) {
      throw new IllegalArgumentException(
          "output size must be positive, got " + outWidth + "x" + outHeight);
    }
    // The inverse as the Python side computes it: x = (ia·u + ib·v) + itx, y = (ia·v − ib·u) + ity.
    double a = srcToDst.a;
    double b = srcToDst.b;
    double k = a * a + b * b;
    if (!(k > 0) || !Double.isFinite(k)) {
      throw new IllegalArgumentException("degenerate similarity transform: " + srcToDst);
    }
    double ia = a / k;
    double ib = b / k;
    double itx = -(ia * srcToDst.tx + ib * srcToDst.ty);
    double ity = -(ia * srcToDst.ty - ib * srcToDst.tx);

    int w = src.width;
    int h = src.height;
    byte[] px = src.rgb;
    byte[] out = new byte[outWidth * outHeight * 3];
    for (int v = 0; v < outHeight; v++) {
      for (int u = 0; u < outWidth; u++) {
        double x = (ia * u + ib * v) + itx;
        double y = (ia * v - ib * u) + ity;
        double x0 = Math.floor(x);
        double y0 = Math.floor(y);
        double fx = x - x0;
        double fy = y - y0;
        int o = (v * outWidth + u) * 3;
        // Entirely outside (all four neighbours are border): the value is exactly 0.
        if (!(x0 >= -1 && y0 >= -1 && x0 < w && y0 < h)) {
          continue;
        }
        int xi = (int) x0;
        int yi = (int) y0;
        boolean inX0 = xi >= 0;
        boolean inX1 = xi + 1 < w;
        boolean inY0 = yi >= 0;
        boolean inY1 = yi + 1 < h;
        int i00 = (yi * w + xi) * 3;
        int i10 = i00 + 3;
        int i01 = i00 + w * 3;
        int i11 = i01 + 3;
        double gx = 1.0 - fx;
        double gy = 1.0 - fy;
        for (int c = 0; c < 3; c++) {
          double p00 = inX0 && inY0 ? px[i00 + c] & 0xff : 0.0;
          double p10 = inX1 && inY0 ? px[i10 + c] & 0xff : 0.0;
          double p01 = inX0 && inY1 ? px[i01 + c] & 0xff : 0.0;
          double p11 = inX1 && inY1 ? px[i11 + c] & 0xff : 0.0;
          double top = gx * p00 + fx * p10;
          double bottom = gx * p01 + fx * p11;
          double value = gy * top + fy * bottom;
          double r = Math.floor(value + 0.5);
          out[o + c] = (byte) (r < 0 ? 0 : r > 255 ? 255 : (int) r);
        }
      }
    }
    return new RgbImage(outWidth, outHeight, out);
  }
}
