package org.pocketnet.core;

/**
 * Embedding arithmetic shared by the app, the gallery and the golden check.
 *
 * <p>Sums are accumulated in double precision in index order; the Python twin
 * ({@code pocketnet_tf.face.gallery}) does the same with {@code np.float64}, so both sides agree to
 * the last float bit on the same inputs.
 */
public final class Embeddings {
  private Embeddings() {}

  /** {@code v / ||v||₂} as float; throws on a zero or non-finite vector. */
  public static float[] l2Normalize(float[] v) {
    double sum = 0;
    for (float x : v) {
      sum += (double) x * (double) x;
    }
    double norm = Math.sqrt(sum);
    if (!(norm > 0) || !Double.isFinite(norm)) {
      throw new IllegalArgumentException("cannot L2-normalise a vector of norm " + norm);
    }
    float[] out = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      out[i] = (float) (v[i] / norm);
    }
    return out;
  }

  public static double norm(float[] v) {
    double sum = 0;
    for (float x : v) {
      sum += (double) x * (double) x;
    }
    return Math.sqrt(sum);
  }

  /** Dot product in double precision. */
  public static double dot(float[] a, float[] b) {
    if (a.length != b.length) {
      throw new IllegalArgumentException(
          "embeddings differ in size: " + a.length + " vs " + b.length);
    }
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += (double) a[i] * (double) b[i];
    }
    return s;
  }

  /** Cosine similarity {@code a·b / (||a||·||b||)} of raw (not necessarily unit) vectors. */
  public static double cosine(float[] a, float[] b) {
    double na = norm(a);
    double nb = norm(b);
    if (!(na > 0) || !(nb > 0)) {
      throw new IllegalArgumentException("cosine of a zero vector is undefined");
    }
    return dot(a, b) / (na * nb);
  }

  /** Largest absolute value. */
  public static double maxAbs(float[] v) {
    double m = 0;
    for (float x : v) {
      m = Math.max(m, Math.abs((double) x));
    }
    return m;
  }

  /** Largest absolute element-wise difference. */
  public static double maxAbsDiff(float[] a, float[] b) {
    if (a.length != b.length) {
      throw new IllegalArgumentException("arrays differ in size: " + a.length + " vs " + b.length);
    }
    double m = 0;
    for (int i = 0; i < a.length; i++) {
      m = Math.max(m, Math.abs((double) a[i] - (double) b[i]));
    }
    return m;
  }
}
