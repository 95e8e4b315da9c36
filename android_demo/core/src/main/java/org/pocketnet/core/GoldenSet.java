package org.pocketnet.core;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Locale;

/**
 * A bundle's golden test vectors: {@code golden/golden.json} (schema {@value #SCHEMA}) and the
 * files it lists, as {@code tflite/README.md} specifies them. Per case: the aligned face as an
 * 8-bit RGB PNG, the exact float32 input tensor the converter fed ({@code *.input.f32}) and the
 * exact float32 output it got ({@code *.embedding.f32}), both raw little-endian without header.
 *
 * <p>Loading checks that the index was made for this bundle's model, that shapes agree with the
 * metadata, and every file's SHA-256 against the index, so an edited or swapped file is refused.
 */
public final class GoldenSet {
  public static final String SCHEMA = "pocketnet_tf.golden/1";
  public static final String DIR = "golden";
  public static final String INDEX = "golden.json";

  /**
   * The fixed per-mode tolerances {min cosine, max |diff| relative to max |stored|} (the table of
   * {@code pocketnet_tf.export.seal.GOLDEN_TOLERANCES}); golden.json may only be as strict or stricter.
   */
  public static final Map<String, double[]> TOLERANCES;

  static {
    Map<String, double[]> t = new LinkedHashMap<>();
    t.put("fp32", new double[] {0.99999, 1e-4});
    t.put("fp16", new double[] {0.9999, 1e-3});
    t.put("dynamic", new double[] {0.999, 1e-2});
    t.put("int8", new double[] {0.995, 5e-2});
    t.put("int16x8", new double[] {0.999, 1e-2});
    TOLERANCES = Collections.unmodifiableMap(t);
  }

  /** One test vector. */
  public static final class Case {
    public final String image;
    public final RgbImage face;
    /** {@code H·W·3} values, NHWC row-major. */
    public final float[] input;

    public final float[] embedding;

    Case(String image, RgbImage face, float[] input, float[] embedding) {
      this.image = image;
      this.face = face;
      this.input = input;
      this.embedding = embedding;
    }
  }

  /** Minimum cosine between a runtime's embedding and the stored one (the mode's fixed tolerance). */
  public final double minCosine;
  /** Allowed max |difference| as a fraction of the stored embedding's largest magnitude. */
  public final double maxAbsErrorRelative;

  public final List<Case> cases;

  private GoldenSet(double minCosine, double maxAbsErrorRelative, List<Case> cases) {
    this.minCosine = minCosine;
    this.maxAbsErrorRelative = maxAbsErrorRelative;
    this.cases = Collections.unmodifiableList(cases);
  }

  public static GoldenSet read(VerificationBundle bundle) throws IOException {
    BundleMetadata meta = bundle.metadata;
    File dir = new File(bundle.dir, DIR);
    File indexFile = new File(dir, INDEX);
    if (!indexFile.isFile()) {
      throw new FileNotFoundException(indexFile + ": the bundle has no golden vectors");
    }
    JsonObject index =
        Json.parseObject(
            new String(FileIo.readBounded(indexFile, BundleSeal.MAX_JSON_BYTES), StandardCharsets.UTF_8),
            indexFile.getPath());
    String schema = index.getString("schema");
    if (!SCHEMA.equals(schema)) {
      throw index.invalid("schema", "is \"" + schema + "\"; this app reads \"" + SCHEMA + "\"");
    }
    String sha = index.getString("model_sha256").toLowerCase(Locale.ROOT);
    if (!sha.equals(meta.modelSha256)) {
      throw index.invalid(
          "model_sha256", "is " + sha + ": the golden vectors were made for another model than "
              + meta.modelSha256);
    }
    int[] shape = index.getIntArray("input_shape", 4);
    if (!Arrays.equals(shape, new int[] {1, meta.inputHeight, meta.inputWidth, 3})) {
      throw index.invalid(
          "input_shape", "is " + Arrays.toString(shape) + ", the model takes [1, " + meta.inputHeight
              + ", " + meta.inputWidth + ", 3]");
    }
    if (!"float32".equals(index.getString("input_dtype"))) {
      throw index.invalid("input_dtype", "must be \"float32\"");
    }
    if (!"little".equals(index.getString("byte_order"))) {
      throw index.invalid("byte_order", "must be \"little\"");
    }
    int d = index.getInt("embedding_size");
    if (d != meta.embeddingSize) {
      throw index.invalid("embedding_size", "is " + d + ", the metadata says " + meta.embeddingSize);
    }
    JsonObject tol = index.getObject("tolerance");
    double[] table = TOLERANCES.get(meta.mode);
    double minCosine = table[0];
    double relative = table[1];
    if (!(tol.getDouble("min_cosine") >= minCosine && tol.getDouble("max_abs_error_relative") <= relative)) {
      throw tol.invalid(
          "min_cosine", "and max_abs_error_relative are looser than the fixed " + meta.mode + " tolerance ("
              + minCosine + ", " + relative + ")");
    }
    JsonObject[] entries = index.getObjectArray("cases");
    if (entries.length == 0) {
      throw index.invalid("cases", "is empty");
    }
    int values = meta.inputHeight * meta.inputWidth * 3;
    List<Case> cases = new ArrayList<>();
    for (JsonObject e : entries) {
      byte[] png = checkedFile(dir, e, "image");
      File image = new File(dir, e.getString("image"));
      RgbImage face = Png.decodeRgb8(png, image.getPath());
      if (face.width != meta.inputWidth || face.height != meta.inputHeight) {
        throw new IllegalArgumentException(
            image + ": " + face.width + "x" + face.height + " image, the model takes "
                + meta.inputWidth + "x" + meta.inputHeight);
      }
      float[] input = floats(checkedFile(dir, e, "input"), values, new File(dir, e.getString("input")));
      float[] emb = floats(checkedFile(dir, e, "embedding"), d, new File(dir, e.getString("embedding")));
      cases.add(new Case(e.getString("image"), face, input, emb));
    }
    return new GoldenSet(minCosine, relative, cases);
  }

  /** The bytes of the file named by {@code key}, checked against {@code key + "_sha256"}. */
  private static byte[] checkedFile(File dir, JsonObject entry, String key) throws IOException {
    String name = entry.getString(key);
    if (name.isEmpty() || name.contains("/") || name.contains("\\") || name.startsWith(".")) {
      throw entry.invalid(key, "must be a plain file name in " + DIR + "/, got \"" + name + "\"");
    }
    File f = new File(dir, name);
    if (!f.isFile()) {
      throw new FileNotFoundException(f + ": golden file listed in " + INDEX + " not found");
    }
    byte[] data = FileIo.readBounded(f, BundleSeal.MAX_GOLDEN_BYTES);
    String expected = entry.getString(key + "_sha256").toLowerCase(Locale.ROOT);
    String actual = FileIo.sha256Hex(data);
    if (!actual.equals(expected)) {
      throw new IOException(f + ": SHA-256 " + actual + " does not match " + expected + " in " + INDEX);
    }
    return data;
  }

  private static float[] floats(byte[] data, int count, File source) {
    if (data.length != 4L * count) {
      throw new IllegalArgumentException(
          source + ": " + data.length + " bytes, expected " + 4L * count + " (" + count + " float32 values)");
    }
    float[] out = new float[count];
    ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
    return out;
  }
}
