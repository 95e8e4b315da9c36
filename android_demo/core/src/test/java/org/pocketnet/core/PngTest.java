package org.pocketnet.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.Test;

/** {@link Png} against the JDK's encoder (every filter type appears in a noisy/smooth image). */
public class PngTest {
  private static byte[] encode(BufferedImage img) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ImageIO.write(img, "png", out);
    return out.toByteArray();
  }

  private static BufferedImage image(int w, int h, long seed) {
    Random rng = new Random(seed);
    BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        // Half smooth gradients (Sub/Up/Average/Paeth pay off), half noise (None).
        int v = x < w / 2 ? ((x * 3) << 16) | ((y * 5) << 8) | ((x + y) & 0xff) : rng.nextInt(1 << 24);
        img.setRGB(x, y, v & 0xffffff);
      }
    }
    return img;
  }

  @Test
  public void decodesWhatTheJdkEncodes() throws IOException {
    BufferedImage img = image(37, 23, 7);
    RgbImage got = Png.decodeRgb8(encode(img), "t.png");
    assertEquals(37, got.width);
    assertEquals(23, got.height);
    byte[] expected = new byte[37 * 23 * 3];
    for (int y = 0; y < 23; y++) {
      for (int x = 0; x < 37; x++) {
        int p = img.getRGB(x, y);
        int i = (y * 37 + x) * 3;
        expected[i] = (byte) (p >> 16);
        expected[i + 1] = (byte) (p >> 8);
        expected[i + 2] = (byte) p;
      }
    }
    assertArrayEquals(expected, got.rgb);
  }

  private static void assertRefused(byte[] data, String fragment) {
    try {
      Png.decodeRgb8(data, "bad.png");
      fail("decoded a broken PNG");
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().startsWith("bad.png: "));
      assertTrue(e.getMessage(), e.getMessage().contains(fragment));
    }
  }

  @Test
  public void refusesBrokenOrUnsupportedFiles() throws IOException {
    byte[] good = encode(image(8, 8, 1));
    byte[] crc = good.clone();
    crc[40] ^= 1; // inside the first IDAT chunk
    assertRefused(crc, "CRC mismatch");
    byte[] cut = java.util.Arrays.copyOf(good, good.length - 20);
    assertRefused(cut, "truncated");
    assertRefused("GIF89a not a png".getBytes(java.nio.charset.StandardCharsets.US_ASCII), "not a PNG file");
    BufferedImage gray = new BufferedImage(4, 4, BufferedImage.TYPE_BYTE_GRAY);
    assertRefused(encode(gray), "colour type 0");
    BufferedImage argb = new BufferedImage(4, 4, BufferedImage.TYPE_INT_ARGB);
    assertRefused(encode(argb), "colour type 6");
  }
}
