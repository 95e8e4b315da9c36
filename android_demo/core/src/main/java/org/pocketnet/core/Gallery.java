package org.pocketnet.core;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small gallery of named identities, each with one or more enrolled L2-normalised embeddings,
 * tied to one model by its SHA-256 (embeddings of different models are not comparable).
 *
 * <p>File format (UTF-8 JSON, shared with {@code pocketnet_tf.face.gallery}):
 *
 * <pre>
 * {
 *   "format": "pocketnet_tf.gallery",
 *   "version": 1,
 *   "model_sha256": "…64 hex digits…",
 *   "embedding_size": 128,
 *   "identities": [
 *     {"name": "alice", "embeddings": [[0.01, …], …]}
 *   ]
 * }
 * </pre>
 *
 * <p>Matching: the query is L2-normalised; an identity's score is the largest cosine (dot product
 * of unit vectors, summed in double precision in index order) over its embeddings — the pair
 * score the verification threshold was calibrated on; the best identity wins (on a tie, the one
 * enrolled first), and it is accepted when its score is ≥ the threshold. Saving is atomic
 * ({@link FileIo#writeAtomic}), so a crash never loses the previous gallery.
 */
public final class Gallery {
  public static final String FORMAT = "pocketnet_tf.gallery";
  public static final int VERSION = 1;
  public static final int MAX_NAME_LENGTH = 100;
  /** Stored embeddings must be unit vectors to this tolerance. */
  static final double UNIT_NORM_TOLERANCE = 1e-4;

  private final String modelSha256;
  private final int embeddingSize;
  private final LinkedHashMap<String, List<float[]>> identities = new LinkedHashMap<>();

  public Gallery(String modelSha256, int embeddingSize) {
    if (modelSha256 == null || !modelSha256.matches("[0-9a-f]{64}")) {
      throw new IllegalArgumentException(
          "model_sha256 must be 64 lowercase hex digits, got " + modelSha256);
    }
    if (embeddingSize <= 0) {
      throw new IllegalArgumentException("embedding_size must be positive, got " + embeddingSize);
    }
    this.modelSha256 = modelSha256;
    this.embeddingSize = embeddingSize;
  }

  public String modelSha256() {
    return modelSha256;
  }

  public int embeddingSize() {
    return embeddingSize;
  }

  public List<String> names() {
    return Collections.unmodifiableList(new ArrayList<>(identities.keySet()));
  }

  public int size() {
    return identities.size();
  }

  /** The stored (unit) embeddings of {@code name}, or an empty list. */
  public List<float[]> embeddingsOf(String name) {
    List<float[]> list = identities.get(name);
    return list == null ? Collections.<float[]>emptyList() : Collections.unmodifiableList(list);
  }

  /** Adds one embedding (raw; normalised here) to {@code name}, creating the identity. */
  public void enrol(String name, float[] embedding) {
    checkName(name);
    checkSize(embedding, "embedding of '" + name + "'");
    float[] unit = Embeddings.l2Normalize(embedding);
    identities.computeIfAbsent(name, k -> new ArrayList<>()).add(unit);
  }

  public boolean remove(String name) {
    return identities.remove(name) != null;
  }

  static void checkName(String name) {
    if (name == null || name.trim().isEmpty()) {
      throw new IllegalArgumentException("identity name must not be empty");
    }
    if (!name.equals(name.trim())) {
      throw new IllegalArgumentException(
          "identity name must not start or end with spaces: \"" + name + "\"");
    }
    if (name.length() > MAX_NAME_LENGTH) {
      throw new IllegalArgumentException(
          "identity name is longer than " + MAX_NAME_LENGTH + " characters");
    }
    for (int i = 0; i < name.length(); i++) {
      if (Character.isISOControl(name.charAt(i))) {
        throw new IllegalArgumentException("identity name contains a control character");
      }
    }
  }

  private void checkSize(float[] embedding, String what) {
    if (embedding.length != embeddingSize) {
      throw new IllegalArgumentException(
          what + " has " + embedding.length + " values, the gallery holds " + embeddingSize);
    }
  }

  /** One identity's score against a query. */
  public static final class Score {
    public final String name;
    public final double score;

    Score(String name, double score) {
      this.name = name;
      this.score = score;
    }
  }

  /** The outcome of a search: the best identity (null if the gallery is empty) and all scores. */
  public static final class Match {
    public final String name;
    public final double score;
    public final boolean accepted;
    public final double threshold;
    /** Every identity's score, best first (ties in enrolment order). */
    public final List<Score> ranking;

    Match(String name, double score, boolean accepted, double threshold, List<Score> ranking) {
      this.name = name;
      this.score = score;
      this.accepted = accepted;
      this.threshold = threshold;
      this.ranking = ranking;
    }
  }

  /** Searches the gallery for the raw {@code embedding}; accepts when score ≥ threshold. */
  public Match search(float[] embedding, double threshold) {
    checkSize(embedding, "query embedding");
    float[] q = Embeddings.l2Normalize(embedding);
    List<Score> scores = new ArrayList<>();
    for (Map.Entry<String, List<float[]>> e : identities.entrySet()) {
      double best = Double.NEGATIVE_INFINITY;
      for (float[] stored : e.getValue()) {
        best = Math.max(best, Embeddings.dot(q, stored));
      }
      scores.add(new Score(e.getKey(), best));
    }
    List<Score> ranking = new ArrayList<>(scores);
    // Stable sort, best first; equal scores (0.0 and -0.0 included) keep enrolment order.
    Collections.sort(ranking, (x, y) -> x.score > y.score ? -1 : x.score < y.score ? 1 : 0);
    if (ranking.isEmpty()) {
      return new Match(null, Double.NaN, false, threshold, ranking);
    }
    Score top = ranking.get(0);
    return new Match(
        top.name, top.score, top.score >= threshold, threshold, Collections.unmodifiableList(ranking));
  }

  // -------------------------------------------------------------------------------- file format

  public String toJson() {
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("format", FORMAT);
    root.put("version", VERSION);
    root.put("model_sha256", modelSha256);
    root.put("embedding_size", embeddingSize);
    List<Object> ids = new ArrayList<>();
    for (Map.Entry<String, List<float[]>> e : identities.entrySet()) {
      Map<String, Object> id = new LinkedHashMap<>();
      id.put("name", e.getKey());
      List<Object> embs = new ArrayList<>();
      for (float[] v : e.getValue()) {
        List<Object> values = new ArrayList<>(v.length);
        for (float f : v) {
          // The exact double of the float: reads back to the same float in Java and numpy.
          values.add((double) f);
        }
        embs.add(values);
      }
      id.put("embeddings", embs);
      ids.add(id);
    }
    root.put("identities", ids);
    return Json.writePretty(root);
  }

  /** Parses a gallery file's text; {@code source} names it in errors. */
  public static Gallery fromJson(String text, String source) {
    JsonObject root = Json.parseObject(text, source);
    String format = root.getString("format");
    if (!FORMAT.equals(format)) {
      throw new IllegalArgumentException(
          source + ": not a gallery file (format \"" + format + "\", expected \"" + FORMAT + "\")");
    }
    int version = root.getInt("version");
    if (version != VERSION) {
      throw new IllegalArgumentException(
          source + ": gallery version " + version + " is not supported (expected " + VERSION + ")");
    }
    Gallery g;
    try {
      g = new Gallery(root.getString("model_sha256"), root.getInt("embedding_size"));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
    }
    for (JsonObject id : root.getObjectArray("identities")) {
      String name = id.getString("name");
      try {
        checkName(name);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
      }
      if (g.identities.containsKey(name)) {
        throw new IllegalArgumentException(source + ": identity \"" + name + "\" appears twice");
      }
      List<Object> embs = id.getArray("embeddings");
      if (embs.isEmpty()) {
        throw new IllegalArgumentException(source + ": identity \"" + name + "\" has no embeddings");
      }
      List<float[]> stored = new ArrayList<>();
      double[][] rows = id.getMatrix("embeddings", embs.size(), g.embeddingSize);
      for (int r = 0; r < rows.length; r++) {
        float[] v = new float[rows[r].length];
        for (int i = 0; i < v.length; i++) {
          v[i] = (float) rows[r][i];
          if (!Float.isFinite(v[i])) {
            throw new IllegalArgumentException(
                source + ": identity \"" + name + "\" embedding " + r + " has a non-finite value");
          }
        }
        double n = Embeddings.norm(v);
        if (Math.abs(n - 1.0) > UNIT_NORM_TOLERANCE) {
          throw new IllegalArgumentException(
              source + ": identity \"" + name + "\" embedding " + r + " is not unit length (norm "
                  + n + ")");
        }
        stored.add(v);
      }
      g.identities.put(name, stored);
    }
    return g;
  }

  /** Loads a gallery and checks it belongs to the model with {@code expectedModelSha256}. */
  public static Gallery load(File file, String expectedModelSha256) throws IOException {
    String text = new String(FileIo.readAll(file), StandardCharsets.UTF_8);
    Gallery g = fromJson(text, file.getPath());
    if (expectedModelSha256 != null && !g.modelSha256.equals(expectedModelSha256)) {
      throw new IllegalArgumentException(
          file.getPath() + ": gallery was enrolled with model " + g.modelSha256
              + ", the loaded model is " + expectedModelSha256 + " (re-enrol with this model)");
    }
    return g;
  }

  /** Writes the gallery atomically (temp file, fsync, rename). */
  public void save(File file) throws IOException {
    FileIo.writeAtomic(file, toJson().getBytes(StandardCharsets.UTF_8));
  }
}
