package org.pocketnet.demo;

import android.content.ContentResolver;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.graphics.Matrix;
import android.net.Uri;
import androidx.exifinterface.media.ExifInterface;
import java.io.IOException;
import java.io.InputStream;
import org.pocketnet.core.RgbImage;

/** Conversions between Android bitmaps and the core's {@link RgbImage}, and photo decoding. */
final class Bitmaps {
  /** Photos are decoded with power-of-two subsampling down to about this many pixels per side. */
  static final int MAX_PHOTO_SIDE = 1600;

  private Bitmaps() {}

  static RgbImage toRgb(Bitmap bitmap) {
    Bitmap argb =
        bitmap.getConfig() == Bitmap.Config.ARGB_8888 ? bitmap : bitmap.copy(Bitmap.Config.ARGB_8888, false);
    int w = argb.getWidth();
    int h = argb.getHeight();
    int[] pixels = new int[w * h];
    argb.getPixels(pixels, 0, w, 0, 0, w, h);
    return RgbImage.fromArgb(pixels, w, h);
  }

  static Bitmap toBitmap(RgbImage image) {
    return Bitmap.createBitmap(image.toArgb(), image.width, image.height, Bitmap.Config.ARGB_8888);
  }

  static Bitmap rotate(Bitmap bitmap, int degrees) {
    if (degrees % 360 == 0) {
      return bitmap;
    }
    Matrix m = new Matrix();
    m.postRotate(degrees);
    return Bitmap.createBitmap(bitmap, 0, 0, bitmap.getWidth(), bitmap.getHeight(), m, true);
  }

  /** Decodes a picked photo upright (EXIF orientation applied), subsampled to a sane size. */
  static Bitmap decodePhoto(ContentResolver resolver, Uri uri) throws IOException {
    BitmapFactory.Options bounds = new BitmapFactory.Options();
    bounds.inJustDecodeBounds = true;
    try (InputStream in = resolver.openInputStream(uri)) {
      BitmapFactory.decodeStream(in, null, bounds);
    }
    if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
      throw new IOException(uri + ": not a decodable image");
    }
    BitmapFactory.Options opts = new BitmapFactory.Options();
    opts.inPreferredConfig = Bitmap.Config.ARGB_8888;
    opts.inSampleSize = 1;
    while (Math.max(bounds.outWidth, bounds.outHeight) / (opts.inSampleSize * 2) >= MAX_PHOTO_SIDE) {
      opts.inSampleSize *= 2;
    }
    Bitmap bitmap;
    try (InputStream in = resolver.openInputStream(uri)) {
      bitmap = BitmapFactory.decodeStream(in, null, opts);
    }
    if (bitmap == null) {
      throw new IOException(uri + ": not a decodable image");
    }
    int degrees = 0;
    try (InputStream in = resolver.openInputStream(uri)) {
      if (in != null) {
        degrees = new ExifInterface(in).getRotationDegrees();
      }
    }
    return rotate(bitmap, degrees);
  }
}
