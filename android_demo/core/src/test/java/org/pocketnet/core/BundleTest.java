package org.pocketnet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class BundleTest {
  @Rule public TemporaryFolder tmp = new TemporaryFolder();

  static final byte[] MODEL = "not really a tflite model, but hashed like one".getBytes(StandardCharsets.US_ASCII);

  static String metadata(String inputDType, String inputQuant, String modelSha) {
    return "{\"format\": \"pocketnet_tf.bundle\", \"version\": 1,"
        + " \"model\": {\"file\": \"model.tflite\", \"sha256\": \"" + modelSha + "\"},"
        + " \"input\": {\"shape\": [1, 4, 2, 3], \"layout\": \"NHWC\", \"color\": \"RGB\", \"dtype\": \""
        + inputDType + "\", \"normalization\": {\"mean\": 127.5, \"std\": 127.5}, \"quantization\": "
        + inputQuant + "},"
        + " \"output\": {\"embedding_size\": 2, \"dtype\": \"float32\", \"quantization\": null,"
        + " \"l2_normalized\": false},"
        + " \"alignment\": {\"template\": [[1, 1], [2, 1], [1.5, 2], [1, 3], [2, 3]], \"image_size\": [4, 2]},"
        + " \"verification\": {\"metric\": \"cosine\", \"threshold\": 0.3, \"far\": 0.001},"
        + " \"golden\": {\"images\": \"golden/images.npy\", \"inputs\": \"golden/inputs.npy\","
        + " \"embeddings\": \"golden/embeddings.npy\", \"tolerance\": {\"min_cosine\": 0.999,"
        + " \"max_abs_diff\": 0.01}}}";
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
  public void parsesAFloatAndAnInt8Bundle() {
    BundleMetadata f = BundleMetadata.parse(metadata("float32", "null", sha()), "m");
    assertEquals(BundleMetadata.DType.FLOAT32, f.inputDType);
    assertNull(f.inputQuantization);
    assertEquals(4, f.inputHeight);
    assertEquals(2, f.inputWidth);
    assertEquals(0.3, f.threshold, 0);
    assertEquals(1.5, f.alignmentTemplate[2][0], 0);
    assertEquals("golden/inputs.npy", f.golden.inputs);
    BundleMetadata q =
        BundleMetadata.parse(metadata("int8", "{\"scale\": 0.0078125, \"zero_point\": -1}", sha()), "m");
    assertEquals(BundleMetadata.DType.INT8, q.inputDType);
    assertEquals(0.0078125, q.inputQuantization.scale, 0);
    assertEquals(-1, q.inputQuantization.zeroPoint);
  }

  @Test
  public void rejectsInconsistentMetadata() {
    String good = metadata("float32", "null", sha());
    assertRejected(good.replace("pocketnet_tf.bundle", "other"), "field 'format'");
    assertRejected(good.replace("\"version\": 1", "\"version\": 2"), "this app reads version 1");
    assertRejected(metadata("int8", "null", sha()), "'input.quantization' is required for a INT8");
    assertRejected(metadata("float32", "{\"scale\": 1, \"zero_point\": 0}", sha()), "must be null");
    assertRejected(metadata("int8", "{\"scale\": 0.1, \"zero_point\": 200}", sha()), "outside the INT8 range");
    assertRejected(metadata("int8", "{\"scale\": 0, \"zero_point\": 0}", sha()), "positive number");
    assertRejected(metadata("float16", "null", sha()), "must be float32, int8 or uint8");
    assertRejected(good.replace("\"NHWC\"", "\"NCHW\""), "must be NHWC");
    assertRejected(good.replace("[1, 4, 2, 3]", "[2, 4, 2, 3]"), "must be [1, H, W, 3]");
    assertRejected(good.replace("\"model.tflite\"", "\"../model.tflite\""), "plain file name");
    assertRejected(good.replace("golden/inputs.npy", "../inputs.npy"), "relative path inside the bundle");
    assertRejected(good.replace("\"threshold\": 0.3", "\"threshold\": 1.5"), "cosine in [-1, 1]");
    assertRejected(good.replace("\"image_size\": [4, 2]", "\"image_size\": [112, 112]"), "model input size");
    assertRejected(good.replace("[2, 3]]", "[2, 3], [0, 0]]"), "must have 5 rows");
    assertRejected(good.replace(sha(), "xyz"), "64 hex digits");
    assertRejected(good.replace("\"cosine\"", "\"euclidean\""), "must be \"cosine\"");
  }

  @Test
  public void preprocessesLikeThePythonSide() {
    BundleMetadata f = BundleMetadata.parse(metadata("float32", "null", sha()), "m");
    byte[] px = new byte[4 * 2 * 3];
    for (int i = 0; i < px.length; i++) {
      px[i] = (byte) (i * 11);
    }
    RgbImage crop = new RgbImage(2, 4, px);
    ModelInput in = new Preprocessor(f).toInput(crop);
    for (int i = 0; i < px.length; i++) {
      assertEquals((px[i] & 0xff) / 127.5f - 1.0f, in.floats[i], 0f);
    }
    // int8 with scale 1/128 and zero point -1: q = rint(x * 128) - 1, halves to even, clipped.
    BundleMetadata q =
        BundleMetadata.parse(metadata("int8", "{\"scale\": 0.0078125, \"zero_point\": -1}", sha()), "m");
    byte[] p2 = new byte[24];
    p2[0] = 0; // x = -1 -> -128 - 1 -> clipped to -128
    p2[1] = (byte) 255; // x = 1 -> 128 - 1 = 127
    p2[2] = (byte) 128; // x = 0.003921628 -> 0.50196886 -> rint 1 -> 0
    ModelInput qi = new Preprocessor(q).toInput(new RgbImage(2, 4, p2));
    assertEquals(-128, qi.bytes[0]);
    assertEquals(127, qi.bytes[1]);
    assertEquals(0, qi.bytes[2]);
    try {
      new Preprocessor(f).toInput(new RgbImage(4, 2, px));
      fail();
    } catch (IllegalArgumentException e) {
      assertEquals("crop is 4x2, the model takes 2x4", e.getMessage());
    }
  }

  private File writeBundle(String inputDType, String quant, float[] golden, byte[] goldenQ) throws IOException {
    File dir = tmp.newFolder();
    FileIo.writeAtomic(new File(dir, "model.tflite"), MODEL);
    FileIo.writeAtomic(
        new File(dir, "metadata.json"),
        metadata(inputDType, quant, sha()).getBytes(StandardCharsets.UTF_8));
    byte[] px = new byte[2 * 4 * 2 * 3];
    for (int i = 0; i < px.length; i++) {
      px[i] = (byte) (i * 5);
    }
    FileIo.writeAtomic(new File(dir, "golden/images.npy"), NpyArray.write(NpyArray.DType.UINT8, px, 2, 4, 2, 3));
    if (golden != null) {
      FileIo.writeAtomic(new File(dir, "golden/inputs.npy"), NpyArray.write(golden, 2, 4, 2, 3));
    } else {
      FileIo.writeAtomic(
          new File(dir, "golden/inputs.npy"), NpyArray.write(NpyArray.DType.INT8, goldenQ, 2, 4, 2, 3));
    }
    FileIo.writeAtomic(
        new File(dir, "golden/embeddings.npy"), NpyArray.write(new float[] {1, 0, 0.6f, 0.8f}, 2, 2));
    return dir;
  }

  private static float[] normalized(int n) {
    float[] out = new float[n];
    for (int i = 0; i < n; i++) {
      out[i] = (float) ((i * 5) & 0xff) / 127.5f - 1.0f;
    }
    return out;
  }

  @Test
  public void goldenCheckPassesOnlyForTheRightTensorsAndEmbeddings() throws Exception {
    File dir = writeBundle("float32", "null", normalized(48), null);
    VerificationBundle b = VerificationBundle.open(dir);
    GoldenCheck.Report r = GoldenCheck.run(b, null);
    assertTrue(r.toString(), r.passed());
    assertEquals(2, r.images);
    // A runtime returning the golden embeddings passes; a slightly rotated one fails.
    float[][] golden = {{1, 0}, {0.6f, 0.8f}};
    int[] call = {0};
    assertTrue(GoldenCheck.run(b, in -> golden[call[0]++]).passed());
    GoldenCheck.Report bad = GoldenCheck.run(b, in -> new float[] {0.99f, 0.14f});
    assertFalse(bad.passed());
    assertEquals(2, bad.failures.size());
    // A golden input off by one float ulp is a preprocessing mismatch.
    float[] off = normalized(48);
    off[30] = Math.nextUp(off[30]);
    GoldenCheck.Report r2 = GoldenCheck.run(VerificationBundle.open(writeBundle("float32", "null", off, null)), null);
    assertEquals(1, r2.inputMismatches);
    assertFalse(r2.passed());
    assertTrue(r2.failures.get(0).startsWith("image 1: preprocessing differs"));
  }

  @Test
  public void int8GoldenInputsAreComparedByteForByte() throws Exception {
    String quant = "{\"scale\": 0.0078125, \"zero_point\": -1}";
    float[] x = normalized(48);
    byte[] q = new byte[48];
    for (int i = 0; i < 48; i++) {
      q[i] = (byte) Math.max(-128, Math.min(127, Math.rint(x[i] / 0.0078125f) - 1));
    }
    assertTrue(GoldenCheck.run(VerificationBundle.open(writeBundle("int8", quant, null, q)), null).passed());
    q[7] += 1;
    GoldenCheck.Report r = GoldenCheck.run(VerificationBundle.open(writeBundle("int8", quant, null, q)), null);
    assertEquals(1, r.inputMismatches);
  }

  @Test
  public void openRefusesAModelWithAnotherHash() throws Exception {
    File dir = writeBundle("float32", "null", normalized(48), null);
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
}
