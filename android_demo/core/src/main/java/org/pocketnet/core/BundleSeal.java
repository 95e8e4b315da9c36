package org.pocketnet.core;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * The bundle seal of {@code tflite/README.md}: {@code manifest.json} (schema {@value #SCHEMA})
 * lists the size and SHA-256 of every regular file of the bundle except {@code metadata.json}
 * and itself, and {@code metadata.json} holds the manifest's SHA-256. {@link #check} refuses
 * symlinks, special files, files over their bound, and any file missing, extra or changed, so a
 * bundle is used exactly as the converter wrote it ({@code python -m pocketnet_tf.verify_bundle}
 * checks the same seal).
 */
public final class BundleSeal {
  public static final String SCHEMA = "pocketnet_tf.bundle_manifest/1";
  public static final String MANIFEST_FILE = "manifest.json";
  public static final long MAX_JSON_BYTES = 1L << 20;
  public static final long MAX_MODEL_BYTES = 256L << 20;
  public static final long MAX_GOLDEN_BYTES = 16L << 20;
  /** Written by a later, failed conversion beside a bundle; never part of it, never read. */
  static final String[] FAILED_REPORTS = {"failed_report.json", "failed_report.md"};

  private static final Pattern HEX64 = Pattern.compile("[0-9a-f]{64}");

  /** One manifest entry. */
  public static final class Entry {
    public final long bytes;
    public final String sha256;

    Entry(long bytes, String sha256) {
      this.bytes = bytes;
      this.sha256 = sha256;
    }
  }

  private BundleSeal() {}

  static boolean isHex64(String s) {
    return HEX64.matcher(s).matches();
  }

  /** The size bound of the file at {@code relative} (the model, JSON files, everything else). */
  static long bound(String relative, String modelFile) {
    if (relative.equals(modelFile)) {
      return MAX_MODEL_BYTES;
    }
    return relative.endsWith(".json") ? MAX_JSON_BYTES : MAX_GOLDEN_BYTES;
  }

  /**
   * Checks the seal of {@code dir} against {@code meta}; returns the manifest entries by path.
   *
   * @throws IOException a file that is missing, extra, changed, too large or not a regular file.
   * @throws IllegalArgumentException a malformed manifest (naming the file and the field).
   */
  public static Map<String, Entry> check(File dir, BundleMetadata meta) throws IOException {
    File manifestFile = new File(dir, MANIFEST_FILE);
    byte[] raw = FileIo.readBounded(manifestFile, MAX_JSON_BYTES);
    String actual = FileIo.sha256Hex(raw);
    if (!actual.equals(meta.manifestSha256)) {
      throw new IOException(
          manifestFile + ": SHA-256 " + actual + " does not match " + meta.manifestSha256 + " in "
              + meta.source);
    }
    Map<String, Entry> files =
        entries(Json.parseObject(new String(raw, StandardCharsets.UTF_8), manifestFile.getPath()));
    Entry model = files.get(meta.modelFile);
    if (model == null || !model.sha256.equals(meta.modelSha256)) {
      throw new IOException(
          new File(dir, meta.modelFile) + ": SHA-256 " + (model == null ? "(not listed)" : model.sha256)
              + " in " + manifestFile + " does not match " + meta.modelSha256 + " in " + meta.source
              + " (corrupt or replaced model)");
    }
    TreeSet<String> present = walk(dir);
    for (String name : files.keySet()) {
      if (!present.remove(name)) {
        throw new FileNotFoundException(new File(dir, name) + ": listed in " + manifestFile + " but missing");
      }
    }
    if (!present.isEmpty()) {
      throw new IOException(
          new File(dir, present.first()) + ": not listed in " + manifestFile + " (extra file in a sealed bundle)");
    }
    for (Map.Entry<String, Entry> e : files.entrySet()) {
      File f = new File(dir, e.getKey());
      long limit = bound(e.getKey(), meta.modelFile);
      if (e.getValue().bytes > limit) {
        throw new IOException(f + ": " + e.getValue().bytes + " bytes listed; at most " + limit + " are accepted");
      }
      byte[] data = FileIo.readBounded(f, limit);
      String sha = FileIo.sha256Hex(data);
      if (data.length != e.getValue().bytes || !sha.equals(e.getValue().sha256)) {
        throw new IOException(
            f + ": SHA-256 " + sha + " (" + data.length + " bytes) does not match " + e.getValue().sha256 + " ("
                + e.getValue().bytes + " bytes) in " + manifestFile);
      }
    }
    return Collections.unmodifiableMap(files);
  }

  private static Map<String, Entry> entries(JsonObject manifest) {
    String schema = manifest.getString("schema");
    if (!SCHEMA.equals(schema)) {
      throw manifest.invalid("schema", "is \"" + schema + "\"; this app reads \"" + SCHEMA + "\"");
    }
    JsonObject[] list = manifest.getObjectArray("files");
    if (list.length == 0) {
      throw manifest.invalid("files", "is empty");
    }
    Map<String, Entry> out = new LinkedHashMap<>();
    String previous = null;
    for (JsonObject e : list) {
      if (e.keys().size() != 3) {
        throw e.invalid("path", "entries hold exactly 'path', 'bytes' and 'sha256'");
      }
      String path = e.getString("path");
      if (!plainRelative(path) || path.equals(VerificationBundle.METADATA_FILE) || path.equals(MANIFEST_FILE)
          || isFailedReport(path)) {
        throw e.invalid("path", "\"" + path + "\" is not a relative path inside the bundle");
      }
      if (previous != null && path.compareTo(previous) <= 0) {
        throw e.invalid("path", "\"" + path + "\": files must be sorted by path without repeats");
      }
      long bytes = e.getLong("bytes");
      String sha = e.getString("sha256");
      if (bytes < 0 || !isHex64(sha)) {
        throw e.invalid("sha256", "and 'bytes' must be 64 lowercase hex digits and a byte count");
      }
      out.put(path, new Entry(bytes, sha));
      previous = path;
    }
    return out;
  }

  static boolean plainRelative(String path) {
    if (path.isEmpty() || path.startsWith("/") || path.contains("\\") || path.indexOf('\0') >= 0) {
      return false;
    }
    for (String part : path.split("/", -1)) {
      if (part.isEmpty() || part.equals(".") || part.equals("..")) {
        return false;
      }
    }
    return true;
  }

  private static boolean isFailedReport(String relative) {
    for (String name : FAILED_REPORTS) {
      if (name.equals(relative)) {
        return true;
      }
    }
    return false;
  }

  /** Relative POSIX paths of the regular files below {@code dir}, minus metadata, manifest and failed reports. */
  private static TreeSet<String> walk(File dir) throws IOException {
    Path root = dir.toPath().toRealPath(); // the directory itself may be reached through a link
    TreeSet<String> found = new TreeSet<>();
    Files.walkFileTree(
        root,
        new SimpleFileVisitor<Path>() {
          @Override
          public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes attrs) throws IOException {
            if (attrs.isSymbolicLink()) {
              throw new IOException(d + ": symbolic links are not allowed in a bundle");
            }
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult visitFile(Path f, BasicFileAttributes attrs) throws IOException {
            if (attrs.isSymbolicLink()) {
              throw new IOException(f + ": symbolic links are not allowed in a bundle");
            }
            if (!attrs.isRegularFile()) {
              throw new IOException(f + ": not a regular file");
            }
            String rel = root.relativize(f).toString().replace(File.separatorChar, '/');
            if (!rel.equals(VerificationBundle.METADATA_FILE) && !rel.equals(MANIFEST_FILE) && !isFailedReport(rel)) {
              found.add(rel);
            }
            return FileVisitResult.CONTINUE;
          }
        });
    return found;
  }
}
