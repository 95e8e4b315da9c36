package org.pocketnet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.Test;

public class BlazeFaceTest {

  @Test
  public void anchorsFollowTheShortRangeLayout() {
    double[][] a = BlazeFace.anchors();
    assertEquals(896, a.length);
    // Stride 8: 16x16 cells, 2 anchors each, row-major.
    assertEquals(0.5 / 16, a[0][0], 0);
    assertEquals(0.5 / 16, a[1][0], 0);
    assertEquals(1.5 / 16, a[2][0], 0);
    assertEquals(15.5 / 16, a[511][0], 0);
    assertEquals(15.5 / 16, a[511][1], 0);
    // Stride 16 (three layers share it): 8x8 cells, 6 anchors each.
    assertEquals(0.5 / 8, a[512][0], 0);
    assertEquals(0.5 / 8, a[517][0], 0);
    assertEquals(1.5 / 8, a[518][0], 0);
    assertEquals(7.5 / 8, a[895][1], 0);
  }

  private static float[][] emptyOutputs() {
    float[] reg = new float[896 * 16];
    float[] cls = new float[896];
    Arrays.fill(cls, -10f);
    return new float[][] {reg, cls};
  }

  @Test
  public void decodesBoxKeypointsAndScore() {
    float[][] raw = emptyOutputs();
    int i = 518; // anchor (1.5/8, 0.5/8)
    raw[1][i] = 2f;
    float[] r = {6.4f, -3.2f, 32f, 16f, 1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f};
    System.arraycopy(r, 0, raw[0], i * 16, 16);
    List<BlazeFace.Detection> ds = BlazeFace.decode(raw[0], raw[1], 0.5);
    assertEquals(1, ds.size());
    BlazeFace.Detection d = ds.get(0);
    assertEquals(1 / (1 + Math.exp(-2)), d.score, 1e-15);
    double cx = 6.4f / 128.0 + 1.5 / 8;
    double cy = -3.2f / 128.0 + 0.5 / 8;
    assertEquals(cx - 0.125, d.xmin, 1e-15);
    assertEquals(cx + 0.125, d.xmax, 1e-15);
    assertEquals(cy - 0.0625, d.ymin, 1e-15);
    assertEquals(cy + 0.0625, d.ymax, 1e-15);
    assertEquals(11f / 128.0 + 1.5 / 8, d.keypoints[5][0], 1e-15);
    assertEquals(12f / 128.0 + 0.5 / 8, d.keypoints[5][1], 1e-15);
    // Below the threshold: dropped; huge logits are clipped, not overflowed.
    raw[1][i] = -0.01f;
    assertTrue(BlazeFace.decode(raw[0], raw[1], 0.5).isEmpty());
    raw[1][i] = 1e30f;
    assertEquals(1.0 / (1.0 + Math.exp(-100)), BlazeFace.decode(raw[0], raw[1], 0.5).get(0).score, 0);
  }

  private static BlazeFace.Detection det(double score, double x0, double y0, double x1, double y1, double k) {
    double[][] kps = new double[6][2];
    for (double[] p : kps) {
      p[0] = k;
      p[1] = 2 * k;
    }
    return new BlazeFace.Detection(score, x0, y0, x1, y1, kps);
  }

  @Test
  public void weightedNmsMergesOverlapsByScore() {
    BlazeFace.Detection a = det(0.9, 0.0, 0.0, 1.0, 1.0, 0.5);
    BlazeFace.Detection b = det(0.6, 0.1, 0.0, 1.1, 1.0, 0.8); // IoU 0.9/1.1 with a
    BlazeFace.Detection c = det(0.7, 2.0, 2.0, 3.0, 3.0, 2.5); // separate face
    BlazeFace.Detection edge = det(0.55, 0.7, 0.0, 1.7, 1.0, 9.0); // IoU 0.3/1.7 with a: kept
    List<BlazeFace.Detection> out = BlazeFace.weightedNms(Arrays.asList(b, c, a, edge), 0.3);
    assertEquals(3, out.size());
    BlazeFace.Detection m = out.get(0);
    assertEquals(0.9, m.score, 0);
    assertEquals((0.9 * 0.0 + 0.6 * 0.1) / 1.5, m.xmin, 1e-15);
    assertEquals((0.9 * 1.0 + 0.6 * 1.1) / 1.5, m.xmax, 1e-15);
    assertEquals((0.9 * 0.5 + 0.6 * 0.8) / 1.5, m.keypoints[3][0], 1e-15);
    assertEquals(2 * (0.9 * 0.5 + 0.6 * 0.8) / 1.5, m.keypoints[3][1], 1e-15);
    assertEquals(0.7, out.get(1).score, 0);
    assertEquals(2.0, out.get(1).xmin, 0);
    assertEquals(0.55, out.get(2).score, 0);
    assertEquals(9.0, out.get(2).keypoints[0][0], 0);
  }

  @Test
  public void inputTransformLetterboxesAndProjectsBack() {
    // 600 x 512: reduction 4 -> 128 x 150 reduced, scale 128/150, centred horizontally.
    BlazeFace.InputTransform t = BlazeFace.inputTransform(512, 600);
    assertEquals(4, t.reduction);
    assertEquals(128.0 / 150, t.scale, 0);
    // The image centre maps to the input centre (unit square 0.5, 0.5) and back.
    double[] c = t.toImage(0.5, 0.5);
    assertEquals(4 * 63.5 + 1.5, c[0], 1e-12); // reduced centre 63.5 -> original 255.5
    assertEquals(4 * 74.5 + 1.5, c[1], 1e-12);
    // Top edge of the input (v = -0.5) is the top edge of the reduced image (y = -0.5).
    assertEquals(-0.5 * 4 + 1.5, t.toImage(0.5, 0.0)[1], 1e-12);
    // Small images are not reduced, and a square one fills the input exactly.
    BlazeFace.InputTransform sq = BlazeFace.inputTransform(64, 64);
    assertEquals(1, sq.reduction);
    assertEquals(2.0, sq.scale, 0);
    assertEquals(0.5, sq.tx, 0);
    assertEquals(31.5, sq.toImage(0.5, 0.5)[0], 1e-12);
    // A long thin image is never reduced to nothing.
    BlazeFace.InputTransform thin = BlazeFace.inputTransform(1000, 3);
    assertEquals(3, thin.reduction);
    assertEquals(1, BlazeFace.reduce(new RgbImage(1000, 3, new byte[9000]), thin.reduction).height);
  }

  @Test
  public void reduceAveragesBlocksRoundingHalfUp() {
    byte[] px = new byte[4 * 2 * 3];
    int[] red = {0, 1, 10, 20, 3, 0, 30, 41};
    for (int i = 0; i < 8; i++) {
      px[3 * i] = (byte) red[i];
      px[3 * i + 1] = (byte) 255;
    }
    RgbImage r = BlazeFace.reduce(new RgbImage(4, 2, px), 2);
    assertEquals(2, r.width);
    assertEquals(1, r.height);
    assertEquals(1, r.get(0, 0, 0)); // (0 + 1 + 3 + 0) / 4 = 1
    assertEquals(25, r.get(1, 0, 0)); // (10 + 20 + 30 + 41) / 4 = 25.25
    assertEquals(255, r.get(1, 0, 1));
    RgbImage odd = BlazeFace.reduce(new RgbImage(2, 2, new byte[] {1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}), 2);
    assertEquals(1, odd.get(0, 0, 0)); // 3/4 = 0.75 -> 1
  }

  @Test
  public void prepareInputNormalisesTheLetterbox() {
    byte[] px = new byte[64 * 64 * 3];
    Arrays.fill(px, (byte) 255);
    BlazeFace.InputTransform t = BlazeFace.inputTransform(64, 64);
    float[] in = BlazeFace.prepareInput(new RgbImage(64, 64, px), t);
    assertEquals(128 * 128 * 3, in.length);
    // Interior pixels are white (1.0); the outermost input row blends with the black border.
    assertEquals(1.0f, in[(64 * 128 + 64) * 3], 0f);
    // Input (0, 0) samples source (-0.25, -0.25): 0.75 * (0.75 * 255) = 143.4375 -> 143.
    assertEquals(143 / 127.5f - 1f, in[0], 0f);
  }
}
