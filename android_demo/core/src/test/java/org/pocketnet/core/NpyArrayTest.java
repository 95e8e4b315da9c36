package org.pocketnet.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import org.junit.Test;

public class NpyArrayTest {

  /** Builds a version-1.0 .npy file byte by byte, as numpy.save writes it. */
  static byte[] npy(String header, byte[] payload) {
    String padded = header;
    while ((10 + padded.length() + 1) % 64 != 0) {
      padded += " ";
    }
    padded += "\n";
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(0x93);
    out.writeBytes("NUMPY".getBytes(StandardCharsets.US_ASCII));
    out.write(1);
    out.write(0);
    out.write(padded.length() & 0xff);
    out.write(padded.length() >> 8);
    out.writeBytes(padded.getBytes(StandardCharsets.US_ASCII));
    out.writeBytes(payload);
    return out.toByteArray();
  }

  @Test
  public void readsNumpyWrittenFloat32() {
    ByteBuffer bb = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 6; i++) {
      bb.putFloat(i * 0.5f);
    }
    NpyArray a =
        NpyArray.read(
            npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", bb.array()), "a.npy");
    assertEquals(NpyArray.DType.FLOAT32, a.dtype);
    assertArrayEquals(new int[] {2, 3}, a.shape);
    assertArrayEquals(new float[] {0f, 0.5f, 1f, 1.5f, 2f, 2.5f}, a.toFloatArray(), 0f);
  }

  @Test
  public void readsScalarsBytesAndSignedBytes() {
    ByteBuffer bb = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putDouble(3.25);
    NpyArray s =
        NpyArray.read(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", bb.array()), "s");
    assertEquals(0, s.shape.length);
    assertEquals(3.25, s.getDouble(0), 0);
    NpyArray u =
        NpyArray.read(
            npy("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", new byte[] {1, (byte) 255, 0}),
            "u");
    assertEquals(255.0, u.getDouble(1), 0);
    NpyArray i8 =
        NpyArray.read(
            npy("{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", new byte[] {(byte) 0x80, 127}),
            "i");
    assertEquals(-128.0, i8.getDouble(0), 0);
    assertArrayEquals(new byte[] {(byte) 0x80, 127}, i8.toByteArray());
  }

  @Test
  public void writeThenReadRoundTrips() {
    float[] v = {1.5f, -2f, Float.MIN_VALUE, 3.4e38f, 0f, -0f};
    NpyArray a = NpyArray.read(NpyArray.write(v, 3, 2), "rt");
    assertArrayEquals(new int[] {3, 2}, a.shape);
    float[] back = a.toFloatArray();
    for (int i = 0; i < v.length; i++) {
      assertEquals(Float.floatToIntBits(v[i]), Float.floatToIntBits(back[i]));
    }
    byte[] bytes = {0, 1, 2, (byte) 200};
    NpyArray b = NpyArray.read(NpyArray.write(NpyArray.DType.UINT8, bytes, 4), "rt");
    assertArrayEquals(bytes, b.toByteArray());
    double[] d = {Math.PI, -1e-300};
    assertArrayEquals(d, NpyArray.read(NpyArray.write(d, 2), "rt").toDoubleArray(), 0);
    byte[] file = NpyArray.write(new float[] {1f}, 1);
    assertEquals(0, (file.length - 4) % 64); // header aligned to 64 bytes like numpy
  }

  private static void assertRejected(byte[] file, String fragment) {
    try {
      NpyArray.read(file, "bad.npy");
      fail("accepted a bad .npy");
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().startsWith("bad.npy: "));
      assertTrue(e.getMessage(), e.getMessage().contains(fragment));
    }
  }

  @Test
  public void rejectsBadFiles() {
    assertRejected("not numpy at all".getBytes(StandardCharsets.US_ASCII), "bad magic");
    assertRejected(
        npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", new byte[4]), "Fortran");
    assertRejected(
        npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", new byte[8]),
        "unsupported .npy dtype '<c8'");
    assertRejected(
        npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", new byte[4]),
        "unsupported .npy dtype '>f4'");
    assertRejected(
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", new byte[12]),
        "data has 12 bytes, shape [2, 2] of <f4 needs 16");
    assertRejected(
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }", new byte[4]),
        "expected a dimension");
  }
}
