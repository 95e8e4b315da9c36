package org.pocketnet.core;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/** File helpers: whole-file reads, atomic writes (temp + fsync + rename) and SHA-256. */
public final class FileIo {
  private FileIo() {}

  public static byte[] readAll(File file) throws IOException {
    if (!file.isFile()) {
      throw new java.io.FileNotFoundException(file + ": no such file");
    }
    try (InputStream in = new FileInputStream(file)) {
      return readAll(in);
    }
  }

  /**
   * The bytes of {@code file}, refused unless it is a regular file (not a symlink, device or FIFO)
   * of at most {@code maxBytes} bytes; never reads more than that size plus one byte.
   */
  public static byte[] readBounded(File file, long maxBytes) throws IOException {
    java.nio.file.Path path = file.toPath();
    java.nio.file.attribute.BasicFileAttributes attrs;
    try {
      attrs = Files.readAttributes(
          path, java.nio.file.attribute.BasicFileAttributes.class, java.nio.file.LinkOption.NOFOLLOW_LINKS);
    } catch (java.nio.file.NoSuchFileException e) {
      throw new java.io.FileNotFoundException(file + ": no such file");
    }
    if (attrs.isSymbolicLink()) {
      throw new IOException(file + ": symbolic links are not allowed in a bundle");
    }
    if (!attrs.isRegularFile()) {
      throw new IOException(file + ": not a regular file");
    }
    if (attrs.size() > maxBytes) {
      throw new IOException(file + ": " + attrs.size() + " bytes; at most " + maxBytes + " are accepted");
    }
    byte[] out = new byte[(int) attrs.size()];
    int got = 0;
    try (InputStream in = Files.newInputStream(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      int n;
      while (got < out.length && (n = in.read(out, got, out.length - got)) > 0) {
        got += n;
      }
      if (got != out.length || in.read() != -1) {
        throw new IOException(file + ": changed size while being read");
      }
    }
    return out;
  }

  public static byte[] readAll(InputStream in) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    byte[] buf = new byte[1 << 16];
    int n;
    while ((n = in.read(buf)) > 0) {
      out.write(buf, 0, n);
    }
    return out.toByteArray();
  }

  /**
   * Writes {@code data} to {@code target} so that a crash at any moment leaves either the old
   * file or the new one, never a torn file: the bytes go to a temporary file in the same
   * directory, are flushed to the device, then the temporary is renamed over the target (an
   * atomic rename on POSIX file systems, including Android's), and the directory is synced.
   */
  public static void writeAtomic(File target, byte[] data) throws IOException {
    File dir = target.getAbsoluteFile().getParentFile();
    if (dir != null && !dir.isDirectory() && !dir.mkdirs()) {
      throw new IOException(dir + ": cannot create directory");
    }
    File tmp = File.createTempFile("." + target.getName() + ".", ".tmp", dir);
    boolean moved = false;
    try {
      try (FileOutputStream out = new FileOutputStream(tmp)) {
        out.write(data);
        out.flush();
        out.getFD().sync();
      }
      try {
        Files.move(
            tmp.toPath(),
            target.toPath(),
            StandardCopyOption.ATOMIC_MOVE,
            StandardCopyOption.REPLACE_EXISTING);
      } catch (AtomicMoveNotSupportedException e) {
        throw new IOException(target + ": the file system cannot rename atomically", e);
      }
      moved = true;
      syncDirectory(dir);
    } finally {
      if (!moved) {
        // Best effort: the target is untouched either way.
        tmp.delete();
      }
    }
  }

  private static void syncDirectory(File dir) {
    if (dir == null) {
      return;
    }
    try (FileChannel ch = FileChannel.open(dir.toPath(), StandardOpenOption.READ)) {
      ch.force(true);
    } catch (IOException | UnsupportedOperationException ignored) {
      // Some platforms cannot open or sync a directory; the rename itself is still atomic.
    }
  }

  public static String sha256Hex(byte[] data) {
    MessageDigest md = sha256();
    return hex(md.digest(data));
  }

  public static String sha256Hex(File file) throws IOException {
    MessageDigest md = sha256();
    try (InputStream in = new FileInputStream(file)) {
      byte[] buf = new byte[1 << 16];
      int n;
      while ((n = in.read(buf)) > 0) {
        md.update(buf, 0, n);
      }
    }
    return hex(md.digest());
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is not available", e);
    }
  }

  static String hex(byte[] bytes) {
    StringBuilder sb = new StringBuilder(bytes.length * 2);
    for (byte b : bytes) {
      sb.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
    }
    return sb.toString();
  }
}
