package org.pocketnet.core;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs the Java core on inputs written by Python and writes its results back, for the
 * cross-language test ({@code tests/android/test_cross_language.py}).
 *
 * <p>Usage: {@code java … org.pocketnet.core.CrossLanguageTool JOB.json}. The job is
 * {@code {"tasks": [{"op": …, …}, …]}}; relative paths resolve against the job file's directory.
 * Arrays travel as {@code .npy}, structured results as JSON (doubles printed by {@code
 * Double.toString}, which Python reads back to the same bits).
 */
public final class CrossLanguageTool {
  private final File dir;

  private CrossLanguageTool(File dir) {
    this.dir = dir;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: CrossLanguageTool JOB.json");
      System.exit(2);
    }
    File job = new File(args[0]);
    JsonObject root =
        Json.parseObject(new String(FileIo.readAll(job), StandardCharsets.UTF_8), job.getPath());
    CrossLanguageTool tool = new CrossLanguageTool(job.getAbsoluteFile().getParentFile());
    int n = 0;
    for (JsonObject task : root.getObjectArray("tasks")) {
      tool.run(task);
      n++;
    }
    System.out.println("ran " + n + " tasks");
  }

  private File file(JsonObject task, String key) {
    File f = new File(task.getString(key));
    return f.isAbsolute() ? f : new File(dir, f.getPath());
  }

  private NpyArray npy(JsonObject task, String key) throws IOException {
    File f = file(task, key);
    return NpyArray.read(FileIo.readAll(f), f.getPath());
  }

  private void writeJson(JsonObject task, Object value) throws IOException {
    FileIo.writeAtomic(file(task, "out"), Json.writePretty(value).getBytes(StandardCharsets.UTF_8));
  }

  private void writeNpy(JsonObject task, String key, byte[] npy) throws IOException {
    FileIo.writeAtomic(file(task, key), npy);
  }

  private static double[][] points(NpyArray a) {
    double[] flat = a.toDoubleArray();
    double[][] out = new double[flat.length / 2][];
    for (int i = 0; i < out.length; i++) {
      out[i] = new double[] {flat[2 * i], flat[2 * i + 1]};
    }
    return out;
  }

  private static List<Object> matrix(SimilarityTransform t) {
    double[] m = t.toAffine();
    List<Object> out = new ArrayList<>();
    for (double v : m) {
      out.add(v);
    }
    return out;
  }

  private static Map<String, Object> detectionJson(BlazeFace.Detection d) {
    Map<String, Object> o = new LinkedHashMap<>();
    o.put("score", d.score);
    List<Object> box = new ArrayList<>();
    box.add(d.xmin);
    box.add(d.ymin);
    box.add(d.xmax);
    box.add(d.ymax);
    o.put("box", box);
    List<Object> kps = new ArrayList<>();
    for (double[] p : d.keypoints) {
      List<Object> pt = new ArrayList<>();
      pt.add(p[0]);
      pt.add(p[1]);
      kps.add(pt);
    }
    o.put("keypoints", kps);
    return o;
  }

  private void run(JsonObject task) throws Exception {
    String op = task.getString("op");
    switch (op) {
      case "align5":
        {
          // 5 landmarks -> crop with the given template: data.align.align_face's twin.
          RgbImage img = RgbImage.fromNpy(npy(task, "image"), task.getString("image"));
          int[] size = task.getIntArray("size", 2); // width, height
          FaceAligner aligner =
              new FaceAligner(points(npy(task, "template")), size[0], size[1]);
          SimilarityTransform t = aligner.transformFromLandmarks(points(npy(task, "landmarks")));
          RgbImage crop = aligner.crop(img, t);
          writeNpy(task, "crop", NpyArray.write(NpyArray.DType.UINT8, crop.rgb, size[1], size[0], 3));
          writeNpy(task, "matrix", NpyArray.write(t.toAffine(), 2, 3));
          break;
        }
      case "blazeface_input":
        {
          RgbImage img = RgbImage.fromNpy(npy(task, "image"), task.getString("image"));
          BlazeFace.InputTransform t = BlazeFace.inputTransform(img.width, img.height);
          float[] input = BlazeFace.prepareInput(img, t);
          writeNpy(task, "input", NpyArray.write(input, 1, 128, 128, 3));
          Map<String, Object> o = new LinkedHashMap<>();
          o.put("reduction", t.reduction);
          o.put("scale", t.scale);
          o.put("tx", t.tx);
          o.put("ty", t.ty);
          writeJson(task, o);
          break;
        }
      case "blazeface_detect":
        {
          // Raw network outputs (computed by Python) -> decode, NMS, projection, alignment.
          int width = task.getInt("width");
          int height = task.getInt("height");
          float[] reg = npy(task, "regressors").toFloatArray();
          float[] cls = npy(task, "classificators").toFloatArray();
          BlazeFace.InputTransform t = BlazeFace.inputTransform(width, height);
          List<BlazeFace.Detection> decoded = BlazeFace.decode(reg, cls, BlazeFace.DEFAULT_MIN_SCORE);
          List<BlazeFace.Detection> nms = BlazeFace.weightedNms(decoded, BlazeFace.DEFAULT_IOU_THRESHOLD);
          List<Object> dets = new ArrayList<>();
          for (BlazeFace.Detection d : nms) {
            dets.add(detectionJson(t.toImage(d)));
          }
          Map<String, Object> o = new LinkedHashMap<>();
          o.put("num_decoded", decoded.size());
          o.put("detections", dets);
          if (task.has("image") && !nms.isEmpty()) {
            RgbImage img = RgbImage.fromNpy(npy(task, "image"), task.getString("image"));
            FaceAligner aligner = new FaceAligner(points(npy(task, "template")), 112, 112);
            SimilarityTransform st = aligner.transformFromBlazeFace(t.toImage(nms.get(0)).keypoints);
            RgbImage crop = aligner.crop(img, st);
            writeNpy(task, "crop", NpyArray.write(NpyArray.DType.UINT8, crop.rgb, 112, 112, 3));
            o.put("matrix", matrix(st));
          }
          writeJson(task, o);
          break;
        }
      case "gallery_search":
        {
          // Load a gallery written by Python, score queries, then enrol them and save (for Python).
          Gallery g = Gallery.load(file(task, "gallery"), task.getString("model_sha256"));
          NpyArray q = npy(task, "queries");
          int n = q.shape[0];
          int dim = q.shape[1];
          float[] all = q.toFloatArray();
          double threshold = task.getDouble("threshold");
          List<Object> results = new ArrayList<>();
          for (int i = 0; i < n; i++) {
            float[] v = new float[dim];
            System.arraycopy(all, i * dim, v, 0, dim);
            Gallery.Match m = g.search(v, threshold);
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("name", m.name);
            r.put("score", m.score);
            r.put("accepted", m.accepted);
            List<Object> ranking = new ArrayList<>();
            for (Gallery.Score s : m.ranking) {
              Map<String, Object> e = new LinkedHashMap<>();
              e.put("name", s.name);
              e.put("score", s.score);
              ranking.add(e);
            }
            r.put("ranking", ranking);
            float[] unit = Embeddings.l2Normalize(v);
            List<Object> u = new ArrayList<>();
            for (float f : unit) {
              u.add((double) f);
            }
            r.put("unit", u);
            results.add(r);
          }
          for (int i = 0; i < n; i++) {
            float[] v = new float[dim];
            System.arraycopy(all, i * dim, v, 0, dim);
            g.enrol(task.getArray("enrol_as").get(i).toString(), v);
          }
          g.save(file(task, "gallery_out"));
          writeJson(task, results);
          break;
        }
      case "bundle_open":
        {
          // Opening (metadata, model SHA-256) and reading the golden set must succeed, or fail
          // with the message Python expects.
          Map<String, Object> o = new LinkedHashMap<>();
          try {
            VerificationBundle b = VerificationBundle.open(file(task, "bundle"));
            GoldenSet golden = b.golden();
            o.put("ok", true);
            o.put("threshold", b.metadata.hasThreshold() ? b.metadata.threshold : null);
            o.put("embedding_size", b.metadata.embeddingSize);
            o.put("cases", golden.cases.size());
          } catch (IOException | IllegalArgumentException e) {
            o.put("ok", false);
            o.put("error", e.getMessage());
          }
          writeJson(task, o);
          break;
        }
      case "golden":
        {
          // The bundle's golden faces through the Java PNG decoder and preprocessing, and the Java
          // scores of the golden embeddings (all pairs, and a gallery of them searched with each).
          VerificationBundle b = VerificationBundle.open(file(task, "bundle"));
          GoldenSet golden = b.golden();
          GoldenCheck.Report report = GoldenCheck.run(b, golden, null);
          BundleMetadata meta = b.metadata;
          int n = golden.cases.size();
          int per = meta.inputHeight * meta.inputWidth * 3;
          Preprocessor pre = b.preprocessor();
          float[] floats = new float[n * per];
          byte[] faces = new byte[n * per];
          for (int i = 0; i < n; i++) {
            GoldenSet.Case c = golden.cases.get(i);
            System.arraycopy(pre.toInput(c.face), 0, floats, i * per, per);
            System.arraycopy(c.face.rgb, 0, faces, i * per, per);
          }
          int[] shape = {n, meta.inputHeight, meta.inputWidth, 3};
          writeNpy(task, "inputs", NpyArray.write(floats, shape));
          writeNpy(task, "faces", NpyArray.write(NpyArray.DType.UINT8, faces, shape));
          int d = meta.embeddingSize;
          double[] cos = new double[n * n];
          Gallery g = new Gallery(meta.modelSha256, d);
          for (int i = 0; i < n; i++) {
            float[] a = golden.cases.get(i).embedding;
            g.enrol("id" + i, a);
            for (int j = 0; j < n; j++) {
              cos[i * n + j] = Embeddings.cosine(a, golden.cases.get(j).embedding);
            }
          }
          writeNpy(task, "cosines", NpyArray.write(cos, n, n));
          List<Object> matches = new ArrayList<>();
          for (int i = 0; i < n; i++) {
            Gallery.Match m = g.search(golden.cases.get(i).embedding, meta.threshold);
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("name", m.name);
            r.put("score", m.score);
            r.put("accepted", m.accepted);
            matches.add(r);
          }
          Map<String, Object> o = new LinkedHashMap<>();
          o.put("passed", report.passed());
          o.put("images", report.images);
          o.put("input_values_not_bit_exact", report.inputValuesNotBitExact);
          o.put("input_max_abs_diff", report.inputMaxAbsDiff);
          o.put("failures", new ArrayList<Object>(report.failures));
          o.put("matches", matches);
          writeJson(task, o);
          break;
        }
      default:
        throw new IllegalArgumentException("unknown op '" + op + "'");
    }
  }
}
