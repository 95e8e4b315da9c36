package org.pocketnet.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Pre- and post-processing for MediaPipe's BlazeFace short-range face detector
 * ({@code face_detection_short_range.tflite}: input {@code 1x128x128x3} float RGB in [−1, 1];
 * outputs {@code regressors 1x896x16} and {@code classificators 1x896x1}).
 *
 * <p>The same steps, in the same order and precision, are in {@code pocketnet_tf.face.detect};
 * the cross-language test feeds both the same raw outputs and compares the detections.
 *
 * <ol>
 *   <li><b>Input</b>: images whose longer side is ≥ 256 px are first reduced by the integer
 *       factor {@code k = min(max(w, h) / 128, min(w, h))} (mean of k×k blocks, rounded half up,
 *       partial blocks dropped), then letterboxed (scaled
 *       to fit 128×128 keeping the aspect ratio, centred, black bars) with the bilinear
 *       {@link AffineWarp} (rounded to 8 bits), and normalised as {@code x / 127.5 − 1}.
 *   <li><b>Anchors</b>: SSD anchors of the short-range graph — strides 8, 16, 16, 16; offset 0.5;
 *       fixed size 1: 16×16×2 + 8×8×6 = 896 centres.
 *   <li><b>Decoding</b>: box centre and keypoints {@code = raw / 128 + anchor}, size
 *       {@code = raw / 128}; score {@code = sigmoid(clip(raw, −100, 100))}; keep score ≥ 0.5.
 *   <li><b>Weighted NMS</b> (IoU > 0.3): each cluster's box and keypoints are the score-weighted
 *       mean; the cluster keeps its best score.
 *   <li><b>Projection</b> back to image pixels (pixel centres at integer coordinates).
 * </ol>
 *
 * <p>Keypoints, in model order: 0 = the eye on the image's left (the subject's right eye), 1 =
 * the eye on the image's right, 2 = nose tip, 3 = mouth centre, 4 and 5 = ear tragions (image
 * left, image right).
 */
public final class BlazeFace {
  public static final int INPUT_SIZE = 128;
  public static final int NUM_ANCHORS = 896;
  public static final int NUM_COORDS = 16;
  public static final int NUM_KEYPOINTS = 6;
  public static final double DEFAULT_MIN_SCORE = 0.5;
  public static final double DEFAULT_IOU_THRESHOLD = 0.3;
  private static final double SCORE_CLIP = 100.0;

  private BlazeFace() {}

  /** A detection: box corners and keypoints in one coordinate frame, plus its score. */
  public static final class Detection {
    public final double score;
    public final double xmin;
    public final double ymin;
    public final double xmax;
    public final double ymax;
    /** {@code [NUM_KEYPOINTS][2]} (x, y). */
    public final double[][] keypoints;

    public Detection(
        double score, double xmin, double ymin, double xmax, double ymax, double[][] keypoints) {
      this.score = score;
      this.xmin = xmin;
      this.ymin = ymin;
      this.xmax = xmax;
      this.ymax = ymax;
      this.keypoints = keypoints;
    }

    public double width() {
      return xmax - xmin;
    }

    public double height() {
      return ymax - ymin;
    }

    double area() {
      return Math.max(0, xmax - xmin) * Math.max(0, ymax - ymin);
    }

    @Override
    public String toString() {
      return String.format(
          "Detection[score=%.4f, box=(%.1f, %.1f)-(%.1f, %.1f)]", score, xmin, ymin, xmax, ymax);
    }
  }

  /** Anchor centres {@code [896][2]} (x, y) in the unit square, in the model's output order. */
  public static double[][] anchors() {
    int[] strides = {8, 16, 16, 16};
    double[][] out = new double[NUM_ANCHORS][];
    int n = 0;
    int layer = 0;
    while (layer < strides.length) {
      // Consecutive layers with the same stride share one feature map; each layer adds two
      // anchors per cell (aspect ratio 1 and the interpolated scale, both fixed to size 1).
      int last = layer;
      while (last < strides.length && strides[last] == strides[layer]) {
        last++;
      }
      int perCell = 2 * (last - layer);
      int fm = (int) Math.ceil((double) INPUT_SIZE / strides[layer]);
      for (int y = 0; y < fm; y++) {
        for (int x = 0; x < fm; x++) {
          for (int k = 0; k < perCell; k++) {
            out[n++] = new double[] {(x + 0.5) / fm, (y + 0.5) / fm};
          }
        }
      }
      layer = last;
    }
    if (n != NUM_ANCHORS) {
      throw new AssertionError("anchor count " + n);
    }
    return out;
  }

  private static final double[][] ANCHORS = anchors();

  /**
   * Decodes raw outputs into detections in the model's unit square ({@code [0, 1]} of the 128×128
   * input), keeping scores ≥ {@code minScore}, in anchor order.
   *
   * @param regressors {@code 896 * 16} values.
   * @param classificators {@code 896} logits.
   */
  public static List<Detection> decode(float[] regressors, float[] classificators, double minScore) {
    if (regressors.length != NUM_ANCHORS * NUM_COORDS || classificators.length != NUM_ANCHORS) {
      throw new IllegalArgumentException(
          "BlazeFace outputs must hold " + NUM_ANCHORS * NUM_COORDS + " and " + NUM_ANCHORS
              + " values, got " + regressors.length + " and " + classificators.length);
    }
    List<Detection> out = new ArrayList<>();
    for (int i = 0; i < NUM_ANCHORS; i++) {
      double logit = classificators[i];
      logit = Math.max(-SCORE_CLIP, Math.min(SCORE_CLIP, logit));
      double score = 1.0 / (1.0 + StrictMath.exp(-logit));
      if (!(score >= minScore)) {
        continue;
      }
      int o = i * NUM_COORDS;
      double ax = ANCHORS[i][0];
      double ay = ANCHORS[i][1];
      double cx = regressors[o] / (double) INPUT_SIZE + ax;
      double cy = regressors[o + 1] / (double) INPUT_SIZE + ay;
      double w = regressors[o + 2] / (double) INPUT_SIZE;
      double h = regressors[o + 3] / (double) INPUT_SIZE;
      double[][] kps = new double[NUM_KEYPOINTS][2];
      for (int k = 0; k < NUM_KEYPOINTS; k++) {
        kps[k][0] = regressors[o + 4 + 2 * k] / (double) INPUT_SIZE + ax;
        kps[k][1] = regressors[o + 5 + 2 * k] / (double) INPUT_SIZE + ay;
      }
      out.add(new Detection(score, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, kps));
    }
    return out;
  }

  static double iou(Detection a, Detection b) {
    double ix = Math.min(a.xmax, b.xmax) - Math.max(a.xmin, b.xmin);
    double iy = Math.min(a.ymax, b.ymax) - Math.max(a.ymin, b.ymin);
    if (ix <= 0 || iy <= 0) {
      return 0;
    }
    double inter = ix * iy;
    double union = a.area() + b.area() - inter;
    return union > 0 ? inter / union : 0;
  }

  /**
   * Weighted non-maximum suppression: repeatedly takes the best remaining detection, gathers all
   * remaining ones overlapping it with IoU {@code > iouThreshold} (itself included), and replaces
   * them by their score-weighted mean box and keypoints with the best score. Output best first.
   */
  public static List<Detection> weightedNms(List<Detection> detections, double iouThreshold) {
    List<Detection> remaining = new ArrayList<>(detections);
    // Stable: equal scores keep anchor order (numpy argsort(kind="stable") on the Python side).
    Collections.sort(remaining, (x, y) -> Double.compare(y.score, x.score));
    List<Detection> out = new ArrayList<>();
    while (!remaining.isEmpty()) {
      Detection top = remaining.get(0);
      List<Detection> cluster = new ArrayList<>();
      List<Detection> rest = new ArrayList<>();
      for (Detection d : remaining) {
        if (d == top || iou(top, d) > iouThreshold) {
          cluster.add(d);
        } else {
          rest.add(d);
        }
      }
      double total = 0;
      double xmin = 0;
      double ymin = 0;
      double xmax = 0;
      double ymax = 0;
      double[][] kps = new double[NUM_KEYPOINTS][2];
      for (Detection d : cluster) {
        total += d.score;
        xmin += d.score * d.xmin;
        ymin += d.score * d.ymin;
        xmax += d.score * d.xmax;
        ymax += d.score * d.ymax;
        for (int k = 0; k < NUM_KEYPOINTS; k++) {
          kps[k][0] += d.score * d.keypoints[k][0];
          kps[k][1] += d.score * d.keypoints[k][1];
        }
      }
      for (int k = 0; k < NUM_KEYPOINTS; k++) {
        kps[k][0] /= total;
        kps[k][1] /= total;
      }
      out.add(new Detection(top.score, xmin / total, ymin / total, xmax / total, ymax / total, kps));
      remaining = rest;
    }
    return out;
  }

  // ------------------------------------------------------------------------ image <-> model input

  /**
   * How an image becomes the 128×128 input and how detections go back: integer block reduction
   * {@code k}, then the letterbox affine map {@code u = s·x + tx, v = s·y + ty} from the reduced
   * image to the input (pixel centres on integers).
   */
  public static final class InputTransform {
    public final int reduction;
    public final double scale;
    public final double tx;
    public final double ty;

    InputTransform(int reduction, double scale, double tx, double ty) {
      this.reduction = reduction;
      this.scale = scale;
      this.tx = tx;
      this.ty = ty;
    }

    /** The map from the reduced image to the model input (a similarity without rotation). */
    public SimilarityTransform similarity() {
      return new SimilarityTransform(scale, 0.0, tx, ty);
    }

    /** A unit-square model coordinate back to original-image pixels. */
    public double[] toImage(double nx, double ny) {
      double u = nx * INPUT_SIZE - 0.5;
      double v = ny * INPUT_SIZE - 0.5;
      double xr = (u - tx) / scale;
      double yr = (v - ty) / scale;
      double k = reduction;
      return new double[] {k * xr + (k - 1) / 2.0, k * yr + (k - 1) / 2.0};
    }

    public Detection toImage(Detection d) {
      double[] p0 = toImage(d.xmin, d.ymin);
      double[] p1 = toImage(d.xmax, d.ymax);
      double[][] kps = new double[d.keypoints.length][];
      for (int k = 0; k < kps.length; k++) {
        kps[k] = toImage(d.keypoints[k][0], d.keypoints[k][1]);
      }
      // Box corners go through the same point mapping as the keypoints.
      return new Detection(d.score, p0[0], p0[1], p1[0], p1[1], kps);
    }
  }

  /** The input transform for an image of {@code width x height}. */
  public static InputTransform inputTransform(int width, int height) {
    // Never reduce the shorter side below one pixel.
    int reduction = Math.max(1, Math.min(Math.max(width, height) / INPUT_SIZE, Math.min(width, height)));
    int rw = width / reduction;
    int rh = height / reduction;
    double s = (double) INPUT_SIZE / Math.max(rw, rh);
    double ox = (INPUT_SIZE - s * rw) / 2.0;
    double oy = (INPUT_SIZE - s * rh) / 2.0;
    // Continuous extents: reduced pixel i covers [i, i+1); centre i + 0.5 maps to s(i + 0.5) + o,
    // and the input pixel u is centred at u + 0.5.
    return new InputTransform(reduction, s, s * 0.5 + ox - 0.5, s * 0.5 + oy - 0.5);
  }

  /** Mean of {@code k x k} blocks (rounded half up); trailing partial blocks are dropped. */
  public static RgbImage reduce(RgbImage img, int k) {
    if (k == 1) {
      return img;
    }
    int rw = img.width / k;
    int rh = img.height / k;
    byte[] out = new byte[rw * rh * 3];
    int area = k * k;
    for (int y = 0; y < rh; y++) {
      for (int x = 0; x < rw; x++) {
        for (int c = 0; c < 3; c++) {
          int sum = 0;
          for (int dy = 0; dy < k; dy++) {
            int row = ((y * k + dy) * img.width + x * k) * 3 + c;
            for (int dx = 0; dx < k; dx++) {
              sum += img.rgb[row + dx * 3] & 0xff;
            }
          }
          out[(y * rw + x) * 3 + c] = (byte) ((2 * sum + area) / (2 * area));
        }
      }
    }
    return new RgbImage(rw, rh, out);
  }

  /** The letterboxed 128×128 input image (8-bit) for {@code img}. */
  public static RgbImage letterbox(RgbImage img, InputTransform t) {
    return AffineWarp.warp(reduce(img, t.reduction), t.similarity(), INPUT_SIZE, INPUT_SIZE);
  }

  /** The model input {@code 128*128*3} floats in [−1, 1] for {@code img}: {@code x / 127.5 − 1}. */
  public static float[] prepareInput(RgbImage img, InputTransform t) {
    byte[] boxed = letterbox(img, t).rgb;
    float[] out = new float[boxed.length];
    for (int i = 0; i < boxed.length; i++) {
      out[i] = (boxed[i] & 0xff) / 127.5f - 1.0f;
    }
    return out;
  }

  /** Runs the detector network: {@code input} (1x128x128x3) to {@code {regressors, classificators}}. */
  public interface Runner {
    float[][] run(float[] input) throws Exception;
  }

  /**
   * Full detection on an image: input, network, decoding, NMS, projection to image pixels. Best
   * first.
   */
  public static List<Detection> detect(RgbImage img, Runner runner, double minScore, double iou)
      throws Exception {
    InputTransform t = inputTransform(img.width, img.height);
    float[][] raw = runner.run(prepareInput(img, t));
    List<Detection> nms = weightedNms(decode(raw[0], raw[1], minScore), iou);
    List<Detection> out = new ArrayList<>(nms.size());
    for (Detection d : nms) {
      out.add(t.toImage(d));
    }
    return out;
  }
}
