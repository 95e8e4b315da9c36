package org.pocketnet.core;

/**
 * Aligns a face to the model's input crop with the bundle's 5-point template (ArcFace 112×112,
 * +8 px x-offset: left eye, right eye, nose tip, left and right mouth corner), exactly as
 * {@code pocketnet_tf.data.align.align_face}.
 *
 * <p>Two sources of landmarks:
 *
 * <ul>
 *   <li>5 landmarks in template order ({@link #transformFromLandmarks}), e.g. from a landmark file;
 *   <li>BlazeFace's 6 keypoints ({@link #transformFromBlazeFace}): BlazeFace has no mouth corners,
 *       so the fit uses 4 correspondences — both eyes and the nose tip to their template points,
 *       and the mouth centre to the midpoint of the two template mouth corners. The desktop twin
 *       ({@code python -m pocketnet_tf.align}) does the same, so a photo gives the same crop on
 *       both sides.
 * </ul>
 */
public final class FaceAligner {
  private final double[][] template;
  private final int cropWidth;
  private final int cropHeight;

  /**
   * @param template5 the 5 template points {@code [5][2]} in crop pixels.
   */
  public FaceAligner(double[][] template5, int cropWidth, int cropHeight) {
    if (template5.length != 5) {
      throw new IllegalArgumentException("the alignment template needs 5 points, got " + template5.length);
    }
    for (double[] p : template5) {
      if (p.length != 2 || !Double.isFinite(p[0]) || !Double.isFinite(p[1])) {
        throw new IllegalArgumentException("template points must be finite (x, y) pairs");
      }
    }
    if (cropWidth <= 0 || cropHeight <= 0) {
      throw new IllegalArgumentException("crop size must be positive, got " + cropWidth + "x" + cropHeight);
    }
    this.template = template5;
    this.cropWidth = cropWidth;
    this.cropHeight = cropHeight;
  }

  public int cropWidth() {
    return cropWidth;
  }

  public int cropHeight() {
    return cropHeight;
  }

  /** The 4 destination points used with BlazeFace keypoints. */
  public double[][] blazeFaceTemplate() {
    // Template values are float32 on the Python side; the midpoint is taken of those values.
    double[][] t = new double[5][2];
    for (int i = 0; i < 5; i++) {
      t[i][0] = (float) template[i][0];
      t[i][1] = (float) template[i][1];
    }
    return new double[][] {
      t[0], t[1], t[2], {(t[3][0] + t[4][0]) / 2.0, (t[3][1] + t[4][1]) / 2.0},
    };
  }

  public SimilarityTransform transformFromLandmarks(double[][] landmarks5) {
    if (landmarks5.length != 5) {
      throw new IllegalArgumentException("expected 5 landmarks, got " + landmarks5.length);
    }
    return SimilarityTransform.estimate(landmarks5, template);
  }

  public SimilarityTransform transformFromBlazeFace(double[][] keypoints6) {
    if (keypoints6.length != BlazeFace.NUM_KEYPOINTS) {
      throw new IllegalArgumentException(
          "expected " + BlazeFace.NUM_KEYPOINTS + " BlazeFace keypoints, got " + keypoints6.length);
    }
    double[][] src = {keypoints6[0], keypoints6[1], keypoints6[2], keypoints6[3]};
    return SimilarityTransform.estimate(src, blazeFaceTemplate());
  }

  public RgbImage crop(RgbImage image, SimilarityTransform transform) {
    return AffineWarp.warp(image, transform, cropWidth, cropHeight);
  }
}
