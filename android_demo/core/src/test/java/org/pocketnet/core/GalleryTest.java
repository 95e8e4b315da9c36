package org.pocketnet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.util.Arrays;
import java.util.Random;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class GalleryTest {
  @Rule public TemporaryFolder tmp = new TemporaryFolder();

  static final String SHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  static final String OTHER_SHA = "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

  static float[] randomVector(Random rng, int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) rng.nextGaussian();
    }
    return v;
  }

  @Test
  public void searchFindsTheBestIdentityAndAppliesTheThreshold() {
    Gallery g = new Gallery(SHA, 3);
    g.enrol("alice", new float[] {1, 0, 0});
    g.enrol("alice", new float[] {0, 0, 2}); // second photo of alice
    g.enrol("bob", new float[] {0, 5, 0});
    Gallery.Match m = g.search(new float[] {0.1f, 0f, 1f}, 0.9);
    assertEquals("alice", m.name);
    // max over alice's embeddings: the second one, cos = 1 / sqrt(1.01).
    assertEquals(1.0 / Math.sqrt(1.01), m.score, 1e-7);
    assertTrue(m.accepted);
    assertEquals(Arrays.asList("alice", "bob"), Arrays.asList(m.ranking.get(0).name, m.ranking.get(1).name));
    assertEquals(0.0, m.ranking.get(1).score, 0);

    Gallery.Match weak = g.search(new float[] {1, 1, 0}, 0.75);
    assertFalse(weak.accepted); // cos = 0.7071 < 0.75
    assertEquals(Math.sqrt(0.5), weak.score, 1e-7);
    // Tie between alice and bob: the one enrolled first wins.
    assertEquals("alice", weak.name);
    assertEquals(weak.ranking.get(0).score, weak.ranking.get(1).score, 0);
  }

  @Test
  public void emptyGalleryMatchesNobody() {
    Gallery.Match m = new Gallery(SHA, 2).search(new float[] {1, 0}, 0.3);
    assertNull(m.name);
    assertFalse(m.accepted);
    assertTrue(m.ranking.isEmpty());
  }

  @Test
  public void saveAndLoadKeepEveryBit() throws IOException {
    Random rng = new Random(3);
    Gallery g = new Gallery(SHA, 128);
    for (String name : new String[] {"Zoë", "名前", "o'brien \"quoted\""}) {
      for (int k = 0; k < 3; k++) {
        g.enrol(name, randomVector(rng, 128));
      }
    }
    File f = new File(tmp.getRoot(), "sub/gallery.json");
    g.save(f);
    Gallery back = Gallery.load(f, SHA);
    assertEquals(g.names(), back.names());
    for (String name : g.names()) {
      for (int k = 0; k < 3; k++) {
        float[] a = g.embeddingsOf(name).get(k);
        float[] b = back.embeddingsOf(name).get(k);
        for (int i = 0; i < a.length; i++) {
          assertEquals(Float.floatToIntBits(a[i]), Float.floatToIntBits(b[i]));
        }
      }
    }
    float[] q = randomVector(rng, 128);
    assertEquals(g.search(q, 0.3).score, back.search(q, 0.3).score, 0);
    assertEquals(1, f.getParentFile().listFiles().length); // no temporary left behind
  }

  @Test
  public void loadRefusesAnotherModelsGallery() throws IOException {
    Gallery g = new Gallery(SHA, 2);
    g.enrol("a", new float[] {1, 0});
    File f = tmp.newFile("g.json");
    g.save(f);
    try {
      Gallery.load(f, OTHER_SHA);
      fail();
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("re-enrol with this model"));
      assertTrue(e.getMessage(), e.getMessage().startsWith(f.getPath() + ": "));
    }
  }

  private static void assertRejected(String json, String fragment) {
    try {
      Gallery.fromJson(json, "g.json");
      fail("accepted: " + json);
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().startsWith("g.json: "));
      assertTrue(e.getMessage(), e.getMessage().contains(fragment));
    }
  }

  @Test
  public void rejectsMalformedGalleries() {
    String head =
        "{\"format\": \"pocketnet_tf.gallery\", \"version\": 1, \"model_sha256\": \"" + SHA
            + "\", \"embedding_size\": 2, \"identities\": ";
    assertRejected("{\"format\": \"other\"}", "not a gallery file");
    assertRejected(head.replace("\"version\": 1", "\"version\": 2") + "[]}", "version 2 is not supported");
    assertRejected(head.replace(SHA, "abc") + "[]}", "model_sha256 must be 64");
    assertRejected(head + "[{\"name\": \"a\", \"embeddings\": [[0.6, 0.7]]}]}", "not unit length");
    assertRejected(head + "[{\"name\": \"a\", \"embeddings\": [[1.0]]}]}", "row 0 must be an array of 2");
    assertRejected(head + "[{\"name\": \"a\", \"embeddings\": []}]}", "has no embeddings");
    assertRejected(
        head + "[{\"name\": \"a\", \"embeddings\": [[1, 0]]}, {\"name\": \"a\", \"embeddings\": [[1, 0]]}]}",
        "appears twice");
    assertRejected(head + "[{\"name\": \" a\", \"embeddings\": [[1, 0]]}]}", "start or end with spaces");
    assertRejected(head + "[{\"name\": \"a\\u0001b\", \"embeddings\": [[1, 0]]}]}", "control character");
    assertRejected(head + "[{\"name\": \"a\", \"embeddings\": [[1, \"0\"]]}]}", "not a number");
  }

  @Test
  public void enrolValidatesNamesAndSizes() {
    Gallery g = new Gallery(SHA, 2);
    try {
      g.enrol("", new float[] {1, 0});
      fail();
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage().contains("must not be empty"));
    }
    try {
      g.enrol("a", new float[] {1, 0, 0});
      fail();
    } catch (IllegalArgumentException e) {
      assertEquals("embedding of 'a' has 3 values, the gallery holds 2", e.getMessage());
    }
    assertEquals(0, g.size());
    g.enrol("a", new float[] {1, 0});
    assertTrue(g.remove("a"));
    assertFalse(g.remove("a"));
  }
}
