package org.pocketnet.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class EmbeddingsTest {
  @Test
  public void normalisesAndScores() {
    float[] v = Embeddings.l2Normalize(new float[] {3, 4});
    assertArrayEquals(new float[] {0.6f, 0.8f}, v, 0f);
    assertEquals(1.0, Embeddings.cosine(new float[] {1, 2}, new float[] {2, 4}), 1e-15);
    assertEquals(0.0, Embeddings.cosine(new float[] {1, 0}, new float[] {0, 5}), 0);
    assertEquals(-1.0, Embeddings.cosine(new float[] {1, 1}, new float[] {-2, -2}), 1e-15);
    assertEquals(11.0, Embeddings.dot(new float[] {1, 2}, new float[] {3, 4}), 0);
    assertEquals(0.5, Embeddings.maxAbsDiff(new float[] {1, 2}, new float[] {1.5f, 2}), 0);
  }

  @Test(expected = IllegalArgumentException.class)
  public void zeroVectorHasNoDirection() {
    Embeddings.l2Normalize(new float[] {0, 0, 0});
  }

  @Test(expected = IllegalArgumentException.class)
  public void sizesMustAgree() {
    Embeddings.dot(new float[] {1}, new float[] {1, 2});
  }
}
