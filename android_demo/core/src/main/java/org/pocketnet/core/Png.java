package org.pocketnet.core;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Decoder for the PNG files of a bundle's golden set: 8-bit RGB (colour type 2), not interlaced,
 * as {@code pocketnet_tf.data.preprocess.encode_png} writes them. Pure Java ({@code
 * java.util.zip}), so the golden check runs the same on a desktop JVM and on Android. Every chunk's
 * CRC is checked; anything else (palette, alpha, 16-bit, interlacing, truncation) is refused with
 * a message naming the file.
 */
public final class Png {
  private static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

  private Png() {}

  public static RgbImage decodeRgb8(byte[] data, String source) {
    for (int i = 0; i < SIGNATURE.length; i++) {
      if (data.length <= i || data[i] != SIGNATURE[i]) {
        throw new IllegalArgumentException(source + ": not a PNG file");
      }
    }
    int width = -1;
    int height = -1;
    ByteArrayOutputStream idat = new ByteArrayOutputStream();
    boolean end = false;
    int pos = SIGNATURE.length;
    while (!end) {
      if (pos + 12 > data.length) {
        throw new IllegalArgumentException(source + ": truncated PNG (no IEND chunk)");
      }
      long length = readU32(data, pos);
      String type = new String(data, pos + 4, 4, StandardCharsets.US_ASCII);
      if (length > data.length - pos - 12) {
        throw new IllegalArgumentException(source + ": truncated PNG chunk " + type);
      }
      int n = (int) length;
      CRC32 crc = new CRC32();
      crc.update(data, pos + 4, 4 + n);
      if (crc.getValue() != readU32(data, pos + 8 + n)) {
        throw new IllegalArgumentException(source + ": CRC mismatch in PNG chunk " + type);
      }
      int body = pos + 8;
      switch (type) {
        case "IHDR":
          if (n != 13) {
            throw new IllegalArgumentException(source + ": bad IHDR length " + n);
          }
          width = (int) Math.min(readU32(data, body), Integer.MAX_VALUE);
          height = (int) Math.min(readU32(data, body + 4), Integer.MAX_VALUE);
          int depth = data[body + 8];
          int colour = data[body + 9];
          int interlace = data[body + 12];
          if (depth != 8 || colour != 2 || interlace != 0 || data[body + 10] != 0 || data[body + 11] != 0) {
            throw new IllegalArgumentException(
                source + ": only 8-bit RGB non-interlaced PNGs are supported (bit depth " + depth
                    + ", colour type " + colour + ", interlace " + interlace + ")");
          }
          if (width <= 0 || height <= 0 || (long) width * height > (1L << 26)) {
            throw new IllegalArgumentException(source + ": bad PNG size " + width + "x" + height);
          }
          break;
        case "IDAT":
          idat.write(data, body, n);
          break;
        case "IEND":
          end = true;
          break;
        default:
          if ((data[pos + 4] & 0x20) == 0) {
            throw new IllegalArgumentException(source + ": unsupported critical PNG chunk " + type);
          }
      }
      pos = body + n + 4;
    }
    if (width < 0) {
      throw new IllegalArgumentException(source + ": PNG without IHDR");
    }
    int stride = width * 3;
    byte[] raw = inflate(idat.toByteArray(), (stride + 1) * height, source);
    byte[] rgb = new byte[stride * height];
    for (int y = 0; y < height; y++) {
      unfilter(raw[y * (stride + 1)], raw, y * (stride + 1) + 1, rgb, y * stride, stride, y > 0, source);
    }
    return new RgbImage(width, height, rgb);
  }

  private static long readU32(byte[] b, int i) {
    return ((b[i] & 0xffL) << 24) | ((b[i + 1] & 0xffL) << 16) | ((b[i + 2] & 0xffL) << 8) | (b[i + 3] & 0xffL);
  }

  private static byte[] inflate(byte[] compressed, int expected, String source) {
    Inflater inflater = new Inflater();
    try {
      inflater.setInput(compressed);
      // Grown as data arrives: a small file declaring a large image allocates only what it holds.
      byte[] out = new byte[Math.min(expected, 1 << 16)];
      int got = 0;
      while (got < expected && !inflater.finished()) {
        if (got == out.length) {
          out = java.util.Arrays.copyOf(out, (int) Math.min(expected, 2L * out.length));
        }
        int n = inflater.inflate(out, got, out.length - got);
        if (n == 0 && (inflater.needsInput() || inflater.needsDictionary())) {
          break;
        }
        got += n;
      }
      if (got != expected || !inflater.finished()) {
        throw new IllegalArgumentException(
            source + ": PNG image data holds " + (inflater.finished() ? got : "more or less than")
                + " bytes, expected " + expected);
      }
      return out;
    } catch (DataFormatException e) {
      throw new IllegalArgumentException(source + ": corrupt PNG image data (" + e.getMessage() + ")");
    } finally {
      inflater.end();
    }
  }

  /** Reverses one scanline's filter (bytes per pixel 3) into {@code out}. */
  private static void unfilter(
      byte filter, byte[] in, int from, byte[] out, int to, int stride, boolean hasPrevious, String source) {
    int prev = to - stride;
    for (int i = 0; i < stride; i++) {
      int x = in[from + i] & 0xff;
      int a = i >= 3 ? out[to + i - 3] & 0xff : 0;
      int b = hasPrevious ? out[prev + i] & 0xff : 0;
      int c = hasPrevious && i >= 3 ? out[prev + i - 3] & 0xff : 0;
      int v;
      switch (filter) {
        case 0:
          v = x;
          break;
        case 1:
          v = x + a;
          break;
        case 2:
          v = x + b;
          break;
        case 3:
          v = x + ((a + b) >>> 1);
          break;
        case 4:
          v = x + paeth(a, b, c);
          break;
        default:
          throw new IllegalArgumentException(source + ": bad PNG filter type " + (filter & 0xff));
      }
      out[to + i] = (byte) v;
    }
  }

  private static int paeth(int a, int b, int c) {
    int p = a + b - c;
    int pa = Math.abs(p - a);
    int pb = Math.abs(p - b);
    int pc = Math.abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
  }
}
