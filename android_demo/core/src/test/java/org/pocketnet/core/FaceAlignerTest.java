package org.pocketnet.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.fail;

import org.junit.Test;

public class FaceAlignerTest {
  static final double[][] TEMPLATE = SimilarityTransformTest.TEMPLATE;

  @Test
  public void landmarksOnTheTemplateGiveTheIdentityCrop() {
    FaceAligner aligner = new FaceAligner(TEMPLATE, 112, 112);
    SimilarityTransform t = aligner.transformFromLandmarks(TEMPLATE);
    assertEquals(1.0, t.a, 1e-12);
    assertEquals(0.0, t.b, 1e-12);
    assertEquals(0.0, t.tx, 1e-10);
    assertEquals(0.0, t.ty, 1e-10);
    RgbImage img = AffineWarpTest.ramp(112, 112);
    // Within 1e-10 px of the grid, bilinear sampling returns the pixel itself.
    assertArrayEquals(img.rgb, aligner.crop(img, t).rgb);
  }

  @Test
  public void scaledAndShiftedLandmarksAreUndone() {
    FaceAligner aligner = new FaceAligner(TEMPLATE, 112, 112);
    double[][] lm = new double[5][];
    for (int i = 0; i < 5; i++) {
      lm[i] = new double[] {2 * (float) TEMPLATE[i][0] + 30, 2 * (float) TEMPLATE[i][1] + 10};
    }
    SimilarityTransform t = aligner.transformFromLandmarks(lm);
    assertEquals(0.5, t.a, 1e-12);
    assertEquals(0.0, t.b, 1e-12);
    assertEquals(-15.0, t.tx, 1e-9);
    assertEquals(-5.0, t.ty, 1e-9);
  }

  @Test
  public void blazeFaceUsesEyesNoseAndTheMouthMidpoint() {
    FaceAligner aligner = new FaceAligner(TEMPLATE, 112, 112);
    double[][] t4 = aligner.blazeFaceTemplate();
    assertEquals(4, t4.length);
    assertEquals(((float) TEMPLATE[3][0] + (double) (float) TEMPLATE[4][0]) / 2, t4[3][0], 0);
    assertEquals(((float) TEMPLATE[3][1] + (double) (float) TEMPLATE[4][1]) / 2, t4[3][1], 0);
    // Keypoints placed exactly on the 4 template points (ears anywhere) give the identity.
    double[][] kps = {t4[0], t4[1], t4[2], t4[3], {0, 50}, {111, 50}};
    SimilarityTransform t = aligner.transformFromBlazeFace(kps);
    assertEquals(1.0, t.a, 1e-12);
    assertEquals(0.0, t.b, 1e-12);
    try {
      aligner.transformFromBlazeFace(new double[][] {{0, 0}, {1, 1}});
      fail();
    } catch (IllegalArgumentException e) {
      assertEquals("expected 6 BlazeFace keypoints, got 2", e.getMessage());
    }
  }

  @Test(expected = IllegalArgumentException.class)
  public void templateNeedsFivePoints() {
    new FaceAligner(new double[][] {{1, 2}}, 112, 112);
  }
}
