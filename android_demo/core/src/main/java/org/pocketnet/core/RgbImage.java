package org.pocketnet.core;

/**
 * An 8-bit RGB image, rows top to bottom, pixels interleaved {@code R G B} (HWC) — the layout of a
 * numpy {@code uint8[H, W, 3]} array and of the Python side's decoded images.
 */
public final class RgbImage {
  public final int width;
  public final int height;
  /** {@code height * width * 3} bytes; read channel values with {@code & 0xff}. */
  public final byte[] rgb;

  public RgbImage(int width, int height, byte[] rgb) {
    if (width <= 0 || height <= 0) {
      throw new IllegalArgumentException("image size must be positive, got " + width + "x" + height);
    }
    if (rgb.length != width * height * 3) {
      throw new IllegalArgumentException(
          "RGB buffer of a " + width + "x" + height + " image needs " + width * height * 3
              + " bytes, got " + rgb.length);
    }
    this.width = width;
    this.height = height;
    this.rgb = rgb;
  }

  /** From packed {@code 0xAARRGGBB} pixels (Android's {@code Bitmap.getPixels}); alpha dropped. */
  public static RgbImage fromArgb(int[] argb, int width, int height) {
    if (argb.length != width * height) {
      throw new IllegalArgumentException(
          "ARGB buffer of a " + width + "x" + height + " image needs " + width * height
              + " ints, got " + argb.length);
    }
    byte[] rgb = new byte[width * height * 3];
    for (int i = 0; i < argb.length; i++) {
      int p = argb[i];
      rgb[3 * i] = (byte) (p >> 16);
      rgb[3 * i + 1] = (byte) (p >> 8);
      rgb[3 * i + 2] = (byte) p;
    }
    return new RgbImage(width, height, rgb);
  }

  /** From a {@code uint8[H, W, 3]} {@code .npy} array. */
  public static RgbImage fromNpy(NpyArray array, String source) {
    if (array.dtype != NpyArray.DType.UINT8 || array.shape.length != 3 || array.shape[2] != 3) {
      throw new IllegalArgumentException(
          source + ": expected a uint8 (H, W, 3) image array, got " + array.dtype.descr + " "
              + java.util.Arrays.toString(array.shape));
    }
    return new RgbImage(array.shape[1], array.shape[0], array.toByteArray());
  }

  /** Packed {@code 0xFFRRGGBB} pixels (for Android's {@code Bitmap.setPixels}). */
  public int[] toArgb() {
    int[] out = new int[width * height];
    for (int i = 0; i < out.length; i++) {
      out[i] =
          0xff000000
              | (rgb[3 * i] & 0xff) << 16
              | (rgb[3 * i + 1] & 0xff) << 8
              | (rgb[3 * i + 2] & 0xff);
    }
    return out;
  }

  public int get(int x, int y, int channel) {
    return rgb[(y * width + x) * 3 + channel] & 0xff;
  }
}
