package org.pocketnet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

public class SimilarityTransformTest {
  static final double[][] TEMPLATE = {
    {38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366}, {41.5493, 92.3655}, {70.7299, 92.2041},
  };

  private static double[][] map(SimilarityTransform t, double[][] pts) {
    double[][] out = new double[pts.length][];
    for (int i = 0; i < pts.length; i++) {
      out[i] = t.apply(pts[i][0], pts[i][1]);
    }
    return out;
  }

  @Test
  public void recoversAnExactTransform() {
    // Scale 2, no rotation, integer shift: every value is exact in float32 and double.
    SimilarityTransform truth = new SimilarityTransform(2.0, 0.0, 3.0, -5.0);
    double[][] src = {{10, 20}, {60, 22}, {35, 45}, {15, 70}, {55, 72}};
    SimilarityTransform t = SimilarityTransform.estimate(src, map(truth, src));
    assertEquals(2.0, t.a, 0);
    assertEquals(0.0, t.b, 0);
    assertEquals(3.0, t.tx, 0);
    assertEquals(-5.0, t.ty, 0);
  }

  @Test
  public void recoversARotatedScaledTransform() {
    double angle = Math.toRadians(23);
    SimilarityTransform truth =
        new SimilarityTransform(1.7 * Math.cos(angle), 1.7 * Math.sin(angle), -40.5, 12.25);
    double[][] src = {{10, 20}, {60, 22}, {35, 45}, {15, 70}, {55, 72}};
    SimilarityTransform t = SimilarityTransform.estimate(src, map(truth, src));
    // Destination points pass through float32 (as on the Python side): ~1e-5 agreement.
    assertEquals(truth.a, t.a, 2e-6);
    assertEquals(truth.b, t.b, 2e-6);
    assertEquals(truth.tx, t.tx, 2e-4);
    assertEquals(truth.ty, t.ty, 2e-4);
    assertEquals(1.7, t.scale(), 2e-6);
    assertEquals(angle, t.rotation(), 2e-6);
  }

  @Test
  public void isTheLeastSquaresOptimum() {
    double[][] src = {{101, 143}, {160, 139}, {133, 171}, {110, 200}, {157, 198}};
    SimilarityTransform best = SimilarityTransform.estimate(src, TEMPLATE);
    double e0 = error(best, src);
    double h = 1e-4;
    double[][] steps = {{h, 0, 0, 0}, {0, h, 0, 0}, {0, 0, h, 0}, {0, 0, 0, h}};
    for (double[] s : steps) {
      for (int sign = -1; sign <= 1; sign += 2) {
        SimilarityTransform moved =
            new SimilarityTransform(
                best.a + sign * s[0], best.b + sign * s[1], best.tx + sign * s[2], best.ty + sign * s[3]);
        assertTrue(error(moved, src) > e0);
      }
    }
  }

  private static double error(SimilarityTransform t, double[][] src) {
    double e = 0;
    for (int i = 0; i < src.length; i++) {
      double[] p = t.apply(src[i][0], src[i][1]);
      double dx = p[0] - (float) TEMPLATE[i][0];
      double dy = p[1] - (float) TEMPLATE[i][1];
      e += dx * dx + dy * dy;
    }
    return e;
  }

  @Test
  public void neverReflects() {
    double[][] mirrored = new double[5][];
    for (int i = 0; i < 5; i++) {
      mirrored[i] = new double[] {112 - TEMPLATE[i][0], TEMPLATE[i][1]};
    }
    SimilarityTransform t = SimilarityTransform.estimate(TEMPLATE, mirrored);
    double[] m = t.toAffine();
    assertEquals(m[0], m[4], 0);
    assertEquals(m[1], -m[3], 0);
  }

  @Test
  public void inverseUndoesTheTransform() {
    SimilarityTransform t = new SimilarityTransform(0.8 * Math.cos(-0.5), 0.8 * Math.sin(-0.5), 7, 9);
    SimilarityTransform inv = t.inverse();
    double[] p = inv.apply(t.apply(30, -4)[0], t.apply(30, -4)[1]);
    assertEquals(30, p[0], 1e-12);
    assertEquals(-4, p[1], 1e-12);
  }

  @Test
  public void rejectsDegenerateInput() {
    double[][] same = {{1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}};
    try {
      SimilarityTransform.estimate(same, TEMPLATE);
      fail();
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage().contains("coincide"));
    }
    try {
      SimilarityTransform.estimate(new double[][] {{1, 2}}, new double[][] {{1, 2}});
      fail();
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage().contains("at least 2 points"));
    }
    try {
      SimilarityTransform.estimate(TEMPLATE, new double[][] {{1, 2}, {3, 4}});
      fail();
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage().contains("as many source as destination"));
    }
    try {
      SimilarityTransform.estimate(
          new double[][] {{Double.NaN, 0}, {1, 1}}, new double[][] {{0, 0}, {1, 1}});
      fail();
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage().contains("non-finite"));
    }
  }
}
