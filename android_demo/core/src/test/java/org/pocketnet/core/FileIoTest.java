package org.pocketnet.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class FileIoTest {
  @Rule public TemporaryFolder tmp = new TemporaryFolder();

  @Test
  public void sha256MatchesTheStandardVectors() throws IOException {
    assertEquals(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        FileIo.sha256Hex("abc".getBytes(StandardCharsets.US_ASCII)));
    assertEquals(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        FileIo.sha256Hex(new byte[0]));
    File f = tmp.newFile("m.bin");
    byte[] big = new byte[200_000];
    for (int i = 0; i < big.length; i++) {
      big[i] = (byte) (i * 31);
    }
    FileIo.writeAtomic(f, big);
    assertEquals(FileIo.sha256Hex(big), FileIo.sha256Hex(f));
  }

  @Test
  public void atomicWriteReplacesAndLeavesNoTemporaries() throws IOException {
    File dir = tmp.newFolder("g");
    File target = new File(dir, "gallery.json");
    FileIo.writeAtomic(target, "first".getBytes(StandardCharsets.UTF_8));
    FileIo.writeAtomic(target, "second".getBytes(StandardCharsets.UTF_8));
    assertArrayEquals("second".getBytes(StandardCharsets.UTF_8), FileIo.readAll(target));
    assertEquals(1, dir.listFiles().length);
  }

  @Test
  public void failedRenameKeepsTheOldFileAndRemovesTheTemporary() throws IOException {
    File dir = tmp.newFolder("g");
    // The target is a non-empty directory: the final rename must fail.
    File target = new File(dir, "gallery.json");
    assertTrue(target.mkdir());
    File inside = new File(target, "keep.txt");
    FileIo.writeAtomic(inside, "old".getBytes(StandardCharsets.UTF_8));
    try {
      FileIo.writeAtomic(target, "new".getBytes(StandardCharsets.UTF_8));
      fail("rename over a non-empty directory succeeded");
    } catch (IOException expected) {
      // the previous content survives
    }
    assertArrayEquals("old".getBytes(StandardCharsets.UTF_8), FileIo.readAll(inside));
    assertEquals(1, dir.listFiles().length);
  }

  @Test(expected = java.io.FileNotFoundException.class)
  public void missingFileIsNamed() throws IOException {
    FileIo.readAll(new File(tmp.getRoot(), "absent.bin"));
  }
}
