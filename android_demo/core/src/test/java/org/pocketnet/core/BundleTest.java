package org.pocketnet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import javax.imageio.ImageIO;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * The bundle layout of {@code tflite/README.md} on a hand-made 4x2 bundle; the same code on real
 * converter bundles is checked by {@code tests/android/test_bundle_golden.py}.
 */
public class BundleTest {
  @Rule public TemporaryFolder tmp = new TemporaryFolder();

  static final byte[] MODEL = "not really a tflite model, but hashed like one".getBytes(StandardCharsets.US_ASCII);
  static final String VERIFICATION =
      "{\"metric\": \"cosine\", \"threshold\": 0.3, \"far_target\": 0.001, \"tar\": 0.9}";

  /** metadata.json as the converter writes it (only the fields the app reads, plus a few more). */
  static String metadata(String normalization, String inputQuant, String verification, String modelSha) {
    return "{\"schema\": \"pocketnet_tf.tflite_metadata/1\","
        + " \"model\": {\"file\": \"model.tflite\", \"sha256\": \"" + modelSha + "\", \"mode\": \"int8\","
        + " \"size_bytes\": 46},"
        + " \"input\": {\"name\": \"serving_default_image:0\", \"shape\": [1, 4, 2, 3], \"dtype\": \"float32\","
        + " \"quantization\": " + inputQuant + ", \"layout\": \"NHWC\", \"color\": \"RGB\", \"height\": 4,"
        + " \"width\": 2, \"batch\": 1, \"normalization\": " + normalization + "},"
        + " \"output\": {\"name\": \"out\", \"shape\": [1, 2], \"dtype\": \"float32\", \"quantization\": null,"
        + " \"embedding_size\": 2, \"l2_normalized\": false},"
        + " \"alignment\": {\"template\": [[1, 1], [2, 1], [1.5, 2], [1, 3], [2, 3]], \"output_size\": [4, 2]},"
        + " \"verification\": " + verification + ","
        + " \"bundle\": {\"manifest\": \"manifest.json\", \"manifest_sha256\": \"" + UNSEALED + "\"}}";
  }

  /** The manifest hash {@link #metadata()} states until {@link #seal} writes the real one. */
  static final String UNSEALED = "0000000000000000000000000000000000000000000000000000000000000000";

  /**
   * Writes {@code dir/manifest.json} over every file but the metadata and the manifest (sorted by
   * path, as the converter does) and puts its SHA-256 into {@code dir/metadata.json}.
   */
  static void seal(File dir) throws IOException {
    java.util.List<String> names = new java.util.ArrayList<>();
    java.nio.file.Path root = dir.toPath();
    try (java.util.stream.Stream<java.nio.file.Path> all = java.nio.file.Files.walk(root)) {
      all.filter(java.nio.file.Files::isRegularFile)
          .map(p -> root.relativize(p).toString().replace(File.separatorChar, '/'))
          .filter(n -> !n.equals("metadata.json") && !n.equals("manifest.json"))
          .sorted()
          .forEach(names::add);
    }
    StringBuilder files = new StringBuilder();
    for (String name : names) {
      byte[] data = FileIo.readAll(new File(dir, name));
      files.append(files.length() == 0 ? "" : ", ").append("{\"path\": \"").append(name)
          .append("\", \"bytes\": ").append(data.length).append(", \"sha256\": \"")
          .append(FileIo.sha256Hex(data)).append("\"}");
    }
    byte[] manifest = ("{\"schema\": \"pocketnet_tf.bundle_manifest/1\", \"files\": [" + files + "]}")
        .getBytes(StandardCharsets.UTF_8);
    FileIo.writeAtomic(new File(dir, "manifest.json"), manifest);
    File metaFile = new File(dir, "metadata.json");
    String meta = new String(FileIo.readAll(metaFile), StandardCharsets.UTF_8)
        .replaceAll("\"manifest_sha256\": \"[0-9a-f]*\"", "\"manifest_sha256\": \"" + FileIo.sha256Hex(manifest) + "\"");
    FileIo.writeAtomic(metaFile, meta.getBytes(StandardCharsets.UTF_8));
  }

  static String metadata() {
    return metadata("{\"mean\": 127.5, \"std\": 127.5}", "null", VERIFICATION, sha());
  }

  static String sha() {
    return FileIo.sha256Hex(MODEL);
  }

  private static void assertRejected(String json, String fragment) {
    try {
      BundleMetadata.parse(json, "metadata.json");
      fail("accepted: " + json);
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().startsWith("metadata.json: "));
      assertTrue(e.getMessage(), e.getMessage().contains(fragment));
    }
  }

  @Test
  public void parsesTheConverterMetadata() {
    BundleMetadata m = BundleMetadata.parse(metadata(), "m");
    assertEquals(4, m.inputHeight);
    assertEquals(2, m.inputWidth);
    assertEquals(127.5, m.normMean, 0);
    assertEquals(2, m.embeddingSize);
    assertEquals("int8", m.mode);
    assertTrue(m.hasThreshold());
    assertEquals(0.3, m.threshold, 0);
    assertEquals(0.001, m.farTarget, 0);
    assertEquals(1.5, m.alignmentTemplate[2][0], 0);
    BundleMetadata none = BundleMetadata.parse(metadata("{\"mean\": 0.0, \"std\": 1.0}", "null", "null", sha()), "m");
    assertFalse(none.hasThreshold());
    assertTrue(Double.isNaN(none.threshold));
  }

  @Test
  public void rejectsInconsistentMetadata() {
    String good = metadata();
    assertRejected(good.replace("tflite_metadata/1", "tflite_metadata/2"), "this app reads");
    assertRejected(
        metadata("{\"mean\": 127.5, \"std\": 127.5}", "{\"scale\": 1, \"zero_point\": 0}", VERIFICATION, sha()),
        "float32 tensors only");
    assertRejected(good.replace("\"dtype\": \"float32\", \"quantization\": null, \"l", "\"dtype\": \"int8\", "
        + "\"quantization\": null, \"l"), "'input.dtype' must be \"float32\"");
    assertRejected(good.replace("\"std\": 127.5", "\"std\": 0"), "positive number");
    assertRejected(good.replace("\"NHWC\"", "\"NCHW\""), "must be \"NHWC\"");
    assertRejected(good.replace("[1, 4, 2, 3]", "[-1, 4, 2, 3]"), "--dynamic_batch");
    assertRejected(good.replace("\"height\": 4", "\"height\": 5"), "must equal input.shape");
    assertRejected(good.replace("\"shape\": [1, 2]", "\"shape\": [1, 3]"), "output.shape");
    assertRejected(good.replace("\"model.tflite\"", "\"../model.tflite\""), "plain file name");
    assertRejected(good.replace("\"threshold\": 0.3", "\"threshold\": 1.5"), "cosine in [-1, 1]");
    assertRejected(good.replace("\"output_size\": [4, 2]", "\"output_size\": [112, 112]"), "model input size");
    assertRejected(good.replace("[2, 3]]", "[2, 3], [0, 0]]"), "must have 5 rows");
    assertRejected(good.replace(sha(), "xyz"), "64 hex digits");
    assertRejected(good.replace("\"cosine\"", "\"euclidean\""), "must be \"cosine\"");
    assertRejected(good.replace(", \"verification\": " + VERIFICATION, ""), "missing field 'verification'");
  }

  @Test
  public void preprocessesLikeThePythonSide() {
    byte[] px = new byte[4 * 2 * 3];
    for (int i = 0; i < px.length; i++) {
      px[i] = (byte) (i * 11);
    }
    RgbImage crop = new RgbImage(2, 4, px);
    float[] in = new Preprocessor(BundleMetadata.parse(metadata(), "m")).toInput(crop);
    float[] raw =
        new Preprocessor(BundleMetadata.parse(metadata("{\"mean\": 0.0, \"std\": 1.0}", "null", "null", sha()), "m"))
            .toInput(crop);
    for (int i = 0; i < px.length; i++) {
      // pocketnet_tf.data.preprocess.normalize: x / float32(127.5) - float32(1.0).
      assertEquals((px[i] & 0xff) / 127.5f - 1.0f, in[i], 0f);
      assertEquals((float) (px[i] & 0xff), raw[i], 0f);
    }
    try {
      new Preprocessor(BundleMetadata.parse(metadata(), "m")).toInput(new RgbImage(4, 2, px));
      fail();
    } catch (IllegalArgumentException e) {
      assertEquals("crop is 4x2, the model takes 2x4", e.getMessage());
    }
  }

  // ----------------------------------------------------------------------------- golden vectors

  private static byte[] png(byte[] rgb, int w, int h) throws IOException {
    BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        int i = (y * w + x) * 3;
        img.setRGB(x, y, ((rgb[i] & 0xff) << 16) | ((rgb[i + 1] & 0xff) << 8) | (rgb[i + 2] & 0xff));
      }
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ImageIO.write(img, "png", out);
    return out.toByteArray();
  }

  private static byte[] le(float[] v) {
    ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(v);
    return b.array();
  }

  private static final float[][] EMBEDDINGS = {{1, 0}, {0.6f, 0.8f}};

  /** A two-case bundle; {@code inputs[i]} is written as face i's input tensor. */
  private File writeBundle(float[][] inputs) throws IOException {
    File dir = tmp.newFolder();
    FileIo.writeAtomic(new File(dir, "model.tflite"), MODEL);
    FileIo.writeAtomic(new File(dir, "metadata.json"), metadata().getBytes(StandardCharsets.UTF_8));
    StringBuilder cases = new StringBuilder();
    for (int c = 0; c < 2; c++) {
      byte[] image = png(face(c), 2, 4);
      byte[] input = le(inputs[c]);
      byte[] emb = le(EMBEDDINGS[c]);
      String stem = "face_00" + c;
      FileIo.writeAtomic(new File(dir, "golden/" + stem + ".png"), image);
      FileIo.writeAtomic(new File(dir, "golden/" + stem + ".input.f32"), input);
      FileIo.writeAtomic(new File(dir, "golden/" + stem + ".embedding.f32"), emb);
      cases.append(c == 0 ? "" : ", ")
          .append("{\"image\": \"").append(stem).append(".png\", \"input\": \"").append(stem)
          .append(".input.f32\", \"embedding\": \"").append(stem).append(".embedding.f32\", \"image_sha256\": \"")
          .append(FileIo.sha256Hex(image)).append("\", \"input_sha256\": \"").append(FileIo.sha256Hex(input))
          .append("\", \"embedding_sha256\": \"").append(FileIo.sha256Hex(emb)).append("\", \"embedding_norm\": 1.0}");
    }
    String index =
        "{\"schema\": \"pocketnet_tf.golden/1\", \"model_sha256\": \"" + sha() + "\", \"input_shape\": [1, 4, 2, 3],"
            + " \"input_dtype\": \"float32\", \"embedding_size\": 2, \"byte_order\": \"little\","
            + " \"tolerance\": {\"min_cosine\": 0.995, \"max_abs_error_relative\": 0.05},"
            + " \"cases\": [" + cases + "]}";
    FileIo.writeAtomic(new File(dir, "golden/golden.json"), index.getBytes(StandardCharsets.UTF_8));
    seal(dir);
    return dir;
  }

  private static byte[] face(int c) {
    byte[] px = new byte[24];
    for (int i = 0; i < px.length; i++) {
      px[i] = (byte) (i * 5 + 97 * c);
    }
    return px;
  }

  private static float[] normalized(int c) {
    byte[] px = face(c);
    float[] out = new float[px.length];
    for (int i = 0; i < px.length; i++) {
      out[i] = (float) (px[i] & 0xff) / 127.5f - 1.0f;
    }
    return out;
  }

  @Test
  public void goldenCheckPassesOnlyForTheRightTensorsAndEmbeddings() throws Exception {
    VerificationBundle b = VerificationBundle.open(writeBundle(new float[][] {normalized(0), normalized(1)}));
    GoldenSet golden = b.golden();
    assertEquals(0.995, golden.minCosine, 0);
    GoldenCheck.Report r = GoldenCheck.run(b, golden, null);
    assertTrue(r.toString(), r.passed());
    assertEquals(2, r.images);
    assertEquals(0, r.inputValuesNotBitExact);
    // A runtime returning the golden embeddings passes (it is fed the golden input tensors); one
    // off by more than 5 % of the largest value fails, once per case.
    int[] call = {0};
    GoldenCheck.Report ok =
        GoldenCheck.run(
            b,
            golden,
            in -> {
              assertEquals(normalized(call[0])[5], in[5], 0f);
              return EMBEDDINGS[call[0]++].clone();
            });
    assertTrue(ok.toString(), ok.passed());
    assertEquals(1.0, ok.minCosine, 1e-12);
    GoldenCheck.Report bad = GoldenCheck.run(b, golden, in -> new float[] {0.99f, 0.14f});
    assertEquals(2, bad.failures.size());
    // A golden input one float ulp away is within the 1e-6 tolerance but counted as not bit-exact;
    // one 2e-6 away is a preprocessing failure.
    float[] ulp = normalized(1);
    ulp[7] = Math.nextUp(ulp[7]);
    VerificationBundle b1 = VerificationBundle.open(writeBundle(new float[][] {normalized(0), ulp}));
    GoldenCheck.Report r1 = GoldenCheck.run(b1, b1.golden(), null);
    assertEquals(1, r1.inputValuesNotBitExact);
    assertTrue(r1.toString(), r1.passed());
    float[] off = normalized(1);
    off[7] += 2e-6f;
    VerificationBundle b2 = VerificationBundle.open(writeBundle(new float[][] {normalized(0), off}));
    GoldenCheck.Report r2 = GoldenCheck.run(b2, b2.golden(), null);
    assertFalse(r2.passed());
    assertTrue(r2.failures.get(0), r2.failures.get(0).startsWith("face_001.png: preprocessing differs"));
  }

  /** Opening the bundle or reading its golden set fails with a message containing {@code fragment}. */
  private static void assertGoldenRefused(File dir, String fragment) throws Exception {
    try {
      VerificationBundle.open(dir).golden();
      fail("accepted golden vectors in " + dir);
    } catch (IOException | IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().contains(fragment));
    }
  }

  @Test
  public void goldenFilesAreCheckedAgainstTheIndex() throws Exception {
    float[][] inputs = {normalized(0), normalized(1)};
    File edited = writeBundle(inputs);
    File f = new File(edited, "golden/face_001.embedding.f32");
    byte[] e = FileIo.readAll(f);
    e[0] ^= 1;
    FileIo.writeAtomic(f, e);
    assertGoldenRefused(edited, "face_001.embedding.f32: SHA-256");

    File otherModel = writeBundle(inputs);
    File index = new File(otherModel, "golden/golden.json");
    String text = new String(FileIo.readAll(index), StandardCharsets.UTF_8);
    String zeros = "0000000000000000000000000000000000000000000000000000000000000000";
    FileIo.writeAtomic(index, text.replace("\"model_sha256\": \"" + sha(), "\"model_sha256\": \"" + zeros)
        .getBytes(StandardCharsets.UTF_8));
    assertGoldenRefused(otherModel, "golden.json: SHA-256");
    seal(otherModel);
    assertGoldenRefused(otherModel, "made for another model");

    File escape = writeBundle(inputs);
    index = new File(escape, "golden/golden.json");
    text = new String(FileIo.readAll(index), StandardCharsets.UTF_8);
    FileIo.writeAtomic(index, text.replace("\"face_000.png\"", "\"../metadata.json\"").getBytes(StandardCharsets.UTF_8));
    seal(escape);
    assertGoldenRefused(escape, "plain file name in golden/");

    File missing = writeBundle(inputs);
    new File(missing, "golden/golden.json").delete();
    assertGoldenRefused(missing, "golden.json: listed in");
    seal(missing);
    assertGoldenRefused(missing, "the bundle has no golden vectors");
  }

  @Test
  public void openRefusesAModelWithAnotherHash() throws Exception {
    File dir = writeBundle(new float[][] {normalized(0), normalized(1)});
    byte[] changed = MODEL.clone();
    changed[3] ^= 1;
    FileIo.writeAtomic(new File(dir, "model.tflite"), changed);
    try {
      VerificationBundle.open(dir);
      fail();
    } catch (IOException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("does not match " + sha()));
    }
    new File(dir, "model.tflite").delete();
    try {
      VerificationBundle.open(dir);
      fail();
    } catch (java.io.FileNotFoundException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("model file named in"));
    }
  }

  // ------------------------------------------------------------------------------------ the seal

  private static void append(File f, byte[] extra) throws IOException {
    byte[] old = FileIo.readAll(f);
    byte[] out = java.util.Arrays.copyOf(old, old.length + extra.length);
    System.arraycopy(extra, 0, out, old.length, extra.length);
    FileIo.writeAtomic(f, out);
  }

  @Test
  public void theSealRefusesEveryChangedMissingExtraOrLinkedFile() throws Exception {
    // (A flipped bit in a golden file: goldenFilesAreCheckedAgainstTheIndex.)
    float[][] inputs = {normalized(0), normalized(1)};
    File appended = writeBundle(inputs);
    append(new File(appended, "golden/face_000.png"), "appended".getBytes(StandardCharsets.US_ASCII));
    assertGoldenRefused(appended, "face_000.png: SHA-256");

    File extra = writeBundle(inputs);
    FileIo.writeAtomic(new File(extra, "golden/extra.png"), new byte[] {1});
    assertGoldenRefused(extra, "golden/extra.png: not listed in");
    // A failed later conversion's report beside the bundle is not part of it.
    File failed = writeBundle(inputs);
    FileIo.writeAtomic(new File(failed, "failed_report.json"), new byte[] {'{', '}'});
    assertEquals(2, VerificationBundle.open(failed).golden().cases.size());
    // The bundle directory itself may be reached through a link; only files inside are refused as links.
    File viaLink = new File(tmpRoot(failed), "current-bundle");
    java.nio.file.Files.createSymbolicLink(viaLink.toPath(), failed.toPath());
    assertEquals(2, VerificationBundle.open(viaLink).golden().cases.size());

    File manifest = writeBundle(inputs);
    append(new File(manifest, "manifest.json"), new byte[] {' '});
    assertGoldenRefused(manifest, "manifest.json: SHA-256");

    File zero = writeBundle(inputs);
    File meta = new File(zero, "metadata.json");
    meta.delete();
    java.nio.file.Files.createSymbolicLink(meta.toPath(), new File("/dev/zero").toPath());
    assertGoldenRefused(zero, "metadata.json: symbolic links are not allowed");

    File linked = writeBundle(inputs);
    File png = new File(linked, "golden/face_000.png");
    File moved = new File(tmpRoot(linked), "elsewhere.png");
    java.nio.file.Files.move(png.toPath(), moved.toPath());
    java.nio.file.Files.createSymbolicLink(png.toPath(), moved.toPath());
    assertGoldenRefused(linked, "face_000.png: symbolic links are not allowed");

    File unsealed = writeBundle(inputs);
    String text = new String(FileIo.readAll(new File(unsealed, "metadata.json")), StandardCharsets.UTF_8);
    FileIo.writeAtomic(new File(unsealed, "metadata.json"),
        text.substring(0, text.indexOf(", \"bundle\"")).concat("}").getBytes(StandardCharsets.UTF_8));
    assertGoldenRefused(unsealed, "bundle");
  }

  private File tmpRoot(File bundle) {
    return bundle.getParentFile();
  }

  @Test
  public void toleranceComesFromTheFixedTableAndMayNotBeLoosened() throws Exception {
    File loose = writeBundle(new float[][] {normalized(0), normalized(1)});
    File index = new File(loose, "golden/golden.json");
    String text = new String(FileIo.readAll(index), StandardCharsets.UTF_8);
    FileIo.writeAtomic(index, text.replace("\"min_cosine\": 0.995", "\"min_cosine\": -1")
        .getBytes(StandardCharsets.UTF_8));
    seal(loose);
    assertGoldenRefused(loose, "looser than the fixed int8 tolerance (0.995, 0.05)");
    // A stricter golden.json is accepted, but the table's tolerance is the one applied.
    FileIo.writeAtomic(index, text.replace("\"min_cosine\": 0.995", "\"min_cosine\": 0.9999999")
        .getBytes(StandardCharsets.UTF_8));
    seal(loose);
    GoldenSet strict = VerificationBundle.open(loose).golden();
    assertEquals(0.995, strict.minCosine, 0);
    assertEquals(0.05, strict.maxAbsErrorRelative, 0);
  }

  @Test
  public void malformedMetadataIsAnErrorNamingTheFile() throws Exception {
    String[] bad = {"not json", "[]", "{\"schema\": 5}", "{\"schema\": \"pocketnet_tf.tflite_metadata/1\"}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"};
    for (String text : bad) {
      File dir = writeBundle(new float[][] {normalized(0), normalized(1)});
      File meta = new File(dir, "metadata.json");
      FileIo.writeAtomic(meta, text.getBytes(StandardCharsets.UTF_8));
      try {
        VerificationBundle.open(dir);
        fail("accepted " + text);
      } catch (IllegalArgumentException ex) {
        assertTrue(ex.getMessage(), ex.getMessage().startsWith(meta.getPath() + ": "));
      }
    }
    File big = writeBundle(new float[][] {normalized(0), normalized(1)});
    FileIo.writeAtomic(new File(big, "metadata.json"), new byte[(int) BundleSeal.MAX_JSON_BYTES + 1]);
    assertGoldenRefused(big, "metadata.json: 1048577 bytes; at most 1048576 are accepted");
  }
}
