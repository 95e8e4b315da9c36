package org.pocketnet.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class AffineWarpTest {

  static RgbImage ramp(int w, int h) {
    byte[] px = new byte[w * h * 3];
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        int o = (y * w + x) * 3;
        px[o] = (byte) (10 * x + 1);
        px[o + 1] = (byte) (10 * y + 2);
        px[o + 2] = (byte) (x * y);
      }
    }
    return new RgbImage(w, h, px);
  }

  @Test
  public void identityReproducesTheImage() {
    RgbImage img = ramp(7, 5);
    RgbImage out = AffineWarp.warp(img, new SimilarityTransform(1, 0, 0, 0), 7, 5);
    assertArrayEquals(img.rgb, out.rgb);
  }

  @Test
  public void integerShiftMovesPixelsAndFillsBlack() {
    RgbImage img = ramp(6, 4);
    // Source (x, y) lands on (x + 2, y - 1).
    RgbImage out = AffineWarp.warp(img, new SimilarityTransform(1, 0, 2, -1), 6, 4);
    for (int v = 0; v < 4; v++) {
      for (int u = 0; u < 6; u++) {
        for (int c = 0; c < 3; c++) {
          int x = u - 2;
          int y = v + 1;
          int expected = x >= 0 && x < 6 && y >= 0 && y < 4 ? img.get(x, y, c) : 0;
          assertEquals("u=" + u + " v=" + v + " c=" + c, expected, out.get(u, v, c));
        }
      }
    }
  }

  @Test
  public void halfPixelShiftAveragesAndRoundsHalfUp() {
    // Two pixels 1 and 2 (and 0/255 in other channels): the midpoint is 1.5 -> 2, 127.5 -> 128.
    RgbImage img = new RgbImage(2, 1, new byte[] {1, 0, (byte) 255, 2, (byte) 255, 0});
    RgbImage out = AffineWarp.warp(img, new SimilarityTransform(1, 0, -0.5, 0), 1, 1);
    assertEquals(2, out.get(0, 0, 0));
    assertEquals(128, out.get(0, 0, 1));
    assertEquals(128, out.get(0, 0, 2));
  }

  @Test
  public void borderBlendsWithZero() {
    RgbImage img = new RgbImage(1, 1, new byte[] {100, (byte) 200, 51});
    // Output (0, 0) samples source (-0.25, 0): 0.25*0 + 0.75*100 = 75.
    RgbImage out = AffineWarp.warp(img, new SimilarityTransform(1, 0, 0.25, 0), 1, 1);
    assertEquals(75, out.get(0, 0, 0));
    assertEquals(150, out.get(0, 0, 1));
    assertEquals(38, out.get(0, 0, 2)); // 38.25 -> 38
  }

  @Test
  public void upscaleByTwoInterpolates() {
    RgbImage img = new RgbImage(2, 1, new byte[] {0, 0, 0, 100, 100, 100});
    // Source x = u / 2: u = 0, 1, 2, 3 -> 0, 50, 100, 50 (the last blends with the black border).
    RgbImage out = AffineWarp.warp(img, new SimilarityTransform(2, 0, 0, 0), 4, 1);
    assertEquals(0, out.get(0, 0, 0));
    assertEquals(50, out.get(1, 0, 0));
    assertEquals(100, out.get(2, 0, 0));
    assertEquals(50, out.get(3, 0, 0));
  }

  @Test
  public void rotationByNinetyDegreesTransposes() {
    RgbImage img = ramp(3, 3);
    // (x, y) -> (-y + 2, x): a quarter turn about the centre pixel.
    RgbImage out = AffineWarp.warp(img, new SimilarityTransform(0, 1, 2, 0), 3, 3);
    for (int y = 0; y < 3; y++) {
      for (int x = 0; x < 3; x++) {
        assertEquals(img.get(x, y, 0), out.get(2 - y, x, 0));
      }
    }
  }
}
