package org.pocketnet.core;

import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.Test;

/**
 * Mutation fuzzing of the readers that take bytes from a bundle or the gallery: {@link Json},
 * {@link NpyArray}, {@link Png}. Valid seeds are mutated (bit flips, random and boundary bytes,
 * insertions, deletions, truncation, repeated chunks and brackets) with a fixed seed, so every run
 * (and CI) tries the same inputs. Every input must be accepted or refused with an {@code
 * IllegalArgumentException} whose message starts with the source name; anything else (an index,
 * arithmetic, number-format or out-of-memory error) fails with the input that caused it.
 * {@code -Dfuzz.iterations=N} runs longer (default 1500 per reader).
 */
public class FuzzTest {
  static final int ITERATIONS = Integer.getInteger("fuzz.iterations", 1500);
  static final long SEED = 20261203L;

  interface Reader {
    void read(byte[] data, String source);
  }

  static byte[] mutate(byte[] seed, Random rnd) {
    byte[] b = seed.clone();
    int rounds = 1 + rnd.nextInt(4);
    for (int r = 0; r < rounds; r++) {
      int pos = b.length == 0 ? 0 : rnd.nextInt(b.length);
      switch (rnd.nextInt(8)) {
        case 0:
          if (b.length > 0) {
            b[pos] ^= (byte) (1 << rnd.nextInt(8));
          }
          break;
        case 1:
          if (b.length > 0) {
            byte[] special = {0, (byte) 0xff, 0x7f, (byte) 0x80, '9', '-', '"', '\\'};
            b[pos] = special[rnd.nextInt(special.length)];
          }
          break;
        case 2:
          b = insert(b, pos, randomBytes(rnd, 1 + rnd.nextInt(8)));
          break;
        case 3:
          if (b.length > 1) {
            int n = 1 + rnd.nextInt(Math.min(16, b.length - pos));
            b = concat(Arrays.copyOfRange(b, 0, pos), Arrays.copyOfRange(b, pos + n, b.length));
          }
          break;
        case 4:
          b = Arrays.copyOf(b, pos);
          break;
        case 5:
          if (b.length > 0) {
            int n = 1 + rnd.nextInt(Math.min(32, b.length - pos));
            b = insert(b, pos, Arrays.copyOfRange(b, pos, pos + n));
          }
          break;
        case 6:
          byte[] nest = new byte[1 + rnd.nextInt(200)];
          Arrays.fill(nest, (byte) (rnd.nextBoolean() ? '[' : '{'));
          b = insert(b, pos, nest);
          break;
        default:
          if (b.length >= 4) { // a 32-bit length/size field set to a boundary value
            int at = rnd.nextInt(b.length - 3);
            int[] values = {0, -1, Integer.MAX_VALUE, Integer.MIN_VALUE, 1 << 24, 65535};
            int v = values[rnd.nextInt(values.length)];
            b[at] = (byte) (v >>> 24);
            b[at + 1] = (byte) (v >>> 16);
            b[at + 2] = (byte) (v >>> 8);
            b[at + 3] = (byte) v;
          }
      }
    }
    return b;
  }

  private static byte[] randomBytes(Random rnd, int n) {
    byte[] out = new byte[n];
    rnd.nextBytes(out);
    return out;
  }

  private static byte[] insert(byte[] b, int pos, byte[] piece) {
    return concat(concat(Arrays.copyOfRange(b, 0, pos), piece), Arrays.copyOfRange(b, pos, b.length));
  }

  private static byte[] concat(byte[] a, byte[] b) {
    byte[] out = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  /** Runs {@code reader} on the seeds and {@link #ITERATIONS} mutants; returns how many were refused. */
  static int fuzz(Reader reader, String source, byte[]... seeds) {
    Random rnd = new Random(SEED);
    int refused = 0;
    for (int i = 0; i < ITERATIONS; i++) {
      byte[] input = i < seeds.length ? seeds[i] : mutate(seeds[rnd.nextInt(seeds.length)], rnd);
      try {
        reader.read(input, source);
      } catch (IllegalArgumentException e) {
        if (e.getMessage() == null || !e.getMessage().startsWith(source + ": ")) {
          fail("iteration " + i + ": message does not name the source: " + e + "\ninput " + hex(input));
        }
        refused++;
      } catch (Throwable t) {
        throw new AssertionError("iteration " + i + ": " + t + "\ninput " + hex(input), t);
      }
    }
    return refused;
  }

  static String hex(byte[] b) {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < Math.min(b.length, 400); i++) {
      sb.append(String.format("%02x", b[i] & 0xff));
    }
    return sb + (b.length > 400 ? "... (" + b.length + " bytes)" : "");
  }

  static byte[] png(int w, int h) throws IOException {
    BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        img.setRGB(x, y, (x * 37 + y * 11) * 0x010305);
      }
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ImageIO.write(img, "png", out);
    return out.toByteArray();
  }

  @Test(timeout = 60000)
  public void jsonReaderOnlyThrowsItsOwnErrors() {
    byte[] metadata = BundleTest.metadata().getBytes(StandardCharsets.UTF_8);
    byte[] small = "{\"a\": [1, 2.5e3, -0, \"\\u00e9\\n\", true, null, {\"b\": []}]}".getBytes(StandardCharsets.UTF_8);
    int refused = fuzz((d, s) -> Json.parse(new String(d, StandardCharsets.UTF_8), s), "fuzz.json", metadata, small);
    assertTrue("most mutants of JSON are invalid, got " + refused, refused > ITERATIONS / 3);
    // Metadata checks on parsed-but-wrong documents: also only IllegalArgumentException naming the file.
    fuzz((d, s) -> BundleMetadata.parse(new String(d, StandardCharsets.UTF_8), s), "metadata.json", metadata);
  }

  @Test(timeout = 60000)
  public void npyReaderOnlyThrowsItsOwnErrors() {
    byte[] floats = NpyArray.write(new float[] {1f, -2f, 3.5f, 0f, 5f, 6f}, 2, 3);
    byte[] doubles = NpyArray.write(new double[] {1, 2}, 2);
    byte[] bytes = NpyArray.write(NpyArray.DType.UINT8, new byte[] {1, 2, 3, 4}, 4);
    int refused = fuzz((d, s) -> NpyArray.read(d, s).toFloatArray(), "fuzz.npy", floats, doubles, bytes);
    assertTrue("refused " + refused, refused > ITERATIONS / 3);
  }

  @Test(timeout = 60000)
  public void pngReaderOnlyThrowsItsOwnErrors() throws IOException {
    int refused = fuzz(Png::decodeRgb8, "fuzz.png", png(3, 4), png(8, 2));
    assertTrue("refused " + refused, refused > ITERATIONS / 3);
  }

  @Test
  public void aTinyPngDeclaringAHugeImageAllocatesOnlyWhatItHolds() throws IOException {
    // IHDR says 8192x8192 (the reader's limit): the old decoder allocated the full 201 MB up front.
    byte[] seed = png(3, 4);
    byte[] bomb = seed.clone();
    int ihdr = 16; // 8-byte signature + length + "IHDR"
    for (int i = 0; i < 4; i++) {
      bomb[ihdr + i] = (byte) (8192 >>> (24 - 8 * i));
      bomb[ihdr + 4 + i] = (byte) (8192 >>> (24 - 8 * i));
    }
    java.util.zip.CRC32 crc = new java.util.zip.CRC32();
    crc.update(bomb, 12, 17);
    long c = crc.getValue();
    for (int i = 0; i < 4; i++) {
      bomb[29 + i] = (byte) (c >>> (24 - 8 * i));
    }
    com.sun.management.ThreadMXBean threads =
        (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
    long before = threads.getThreadAllocatedBytes(Thread.currentThread().getId());
    try {
      Png.decodeRgb8(bomb, "bomb.png");
      fail("accepted");
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().startsWith("bomb.png: PNG image data holds"));
    }
    long allocated = threads.getThreadAllocatedBytes(Thread.currentThread().getId()) - before;
    assertTrue(allocated + " bytes allocated for a " + bomb.length + "-byte PNG", allocated < (8L << 20));
  }
}
