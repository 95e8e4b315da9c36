package org.pocketnet.demo;

import android.content.Context;
import android.content.res.AssetManager;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import org.pocketnet.core.FileIo;
import org.pocketnet.core.VerificationBundle;

/**
 * Copies the verification bundle shipped in {@code assets/bundle/} to app storage (LiteRT
 * compiles a model from a file path, and the SHA-256 check reads the same file) and opens it.
 *
 * <p>Files are copied with atomic writes, and only when the shipped {@code metadata.json} differs
 * from the installed one, so an update of the APK replaces the bundle and a crash mid-copy never
 * leaves a half-written model that passes as installed (the metadata is written last).
 */
final class BundleInstaller {
  static final String ASSET_DIR = "bundle";
  static final String DETECTOR_ASSET = "face_detection_short_range.tflite";

  private BundleInstaller() {}

  static VerificationBundle install(Context context) throws IOException {
    AssetManager assets = context.getAssets();
    String[] names = assets.list(ASSET_DIR);
    if (names == null || !Arrays.asList(names).contains(VerificationBundle.METADATA_FILE)) {
      throw new IOException(
          "assets/" + ASSET_DIR + "/" + VerificationBundle.METADATA_FILE
              + " not found: copy a bundle exported by pocketnet_tf into app/src/main/assets/bundle/");
    }
    File dir = new File(context.getFilesDir(), ASSET_DIR);
    byte[] shipped = read(assets, ASSET_DIR + "/" + VerificationBundle.METADATA_FILE);
    File installed = new File(dir, VerificationBundle.METADATA_FILE);
    boolean upToDate = installed.isFile() && Arrays.equals(FileIo.readAll(installed), shipped);
    if (!upToDate) {
      copyTree(assets, ASSET_DIR, dir, VerificationBundle.METADATA_FILE);
      FileIo.writeAtomic(installed, shipped);
    }
    return VerificationBundle.open(dir);
  }

  /** Copies an asset directory recursively, leaving {@code skip} (the metadata) for last. */
  private static void copyTree(AssetManager assets, String path, File target, String skip)
      throws IOException {
    String[] children = assets.list(path);
    if (children == null) {
      return;
    }
    for (String child : children) {
      String childPath = path + "/" + child;
      String[] grand = assets.list(childPath);
      if (grand != null && grand.length > 0) {
        copyTree(assets, childPath, new File(target, child), null);
      } else if (!child.equals(skip)) {
        FileIo.writeAtomic(new File(target, child), read(assets, childPath));
      }
    }
  }

  private static byte[] read(AssetManager assets, String path) throws IOException {
    try (InputStream in = assets.open(path)) {
      return FileIo.readAll(in);
    }
  }
}
