package org.pocketnet.core;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A numpy {@code .npy} array (format versions 1.0–3.0), C order, of one of the dtypes
 * {@code <f4 <f8 |u1 |i1 <i4 <i8} — how the golden tensors travel between Python and Java.
 *
 * <p>The header is a Python dict literal; it is read by a tiny literal parser that knows only
 * strings, integers, tuples and {@code True/False} (never evaluated).
 */
public final class NpyArray {
  public enum DType {
    FLOAT32("<f4", 4),
    FLOAT64("<f8", 8),
    UINT8("|u1", 1),
    INT8("|i1", 1),
    INT32("<i4", 4),
    INT64("<i8", 8);

    public final String descr;
    public final int itemSize;

    DType(String descr, int itemSize) {
      this.descr = descr;
      this.itemSize = itemSize;
    }

    static DType fromDescr(String descr, String source) {
      String d = descr;
      // A one-byte type may be written with any byte-order mark.
      if (d.length() == 3 && d.charAt(2) == '1' && (d.charAt(0) == '<' || d.charAt(0) == '=')) {
        d = "|" + d.substring(1);
      }
      for (DType t : values()) {
        if (t.descr.equals(d)) {
          return t;
        }
      }
      throw new IllegalArgumentException(
          source + ": unsupported .npy dtype '" + descr + "' (expected one of <f4 <f8 |u1 |i1 <i4 <i8)");
    }
  }

  private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};

  public final DType dtype;
  public final int[] shape;
  private final ByteBuffer data; // little-endian, position 0

  private NpyArray(DType dtype, int[] shape, ByteBuffer data) {
    this.dtype = dtype;
    this.shape = shape;
    this.data = data;
  }

  public long size() {
    long n = 1;
    for (int s : shape) {
      n *= s;
    }
    return n;
  }

  /** Values as float (exact for FLOAT32, UINT8, INT8; rounded for the wider types). */
  public float[] toFloatArray() {
    int n = (int) size();
    float[] out = new float[n];
    for (int i = 0; i < n; i++) {
      out[i] = (float) getDouble(i);
    }
    return out;
  }

  public double[] toDoubleArray() {
    int n = (int) size();
    double[] out = new double[n];
    for (int i = 0; i < n; i++) {
      out[i] = getDouble(i);
    }
    return out;
  }

  /** Raw bytes of a UINT8/INT8 array. */
  public byte[] toByteArray() {
    if (dtype != DType.UINT8 && dtype != DType.INT8) {
      throw new IllegalStateException("toByteArray needs a one-byte dtype, this array is " + dtype.descr);
    }
    byte[] out = new byte[(int) size()];
    ByteBuffer view = data.duplicate();
    view.position(0);
    view.get(out);
    return out;
  }

  public double getDouble(int index) {
    switch (dtype) {
      case FLOAT32:
        return data.getFloat(index * 4);
      case FLOAT64:
        return data.getDouble(index * 8);
      case UINT8:
        return data.get(index) & 0xff;
      case INT8:
        return data.get(index);
      case INT32:
        return data.getInt(index * 4);
      case INT64:
        return data.getLong(index * 8);
      default:
        throw new AssertionError(dtype);
    }
  }

  // ----------------------------------------------------------------------------------- reading

  /** Reads {@code .npy} bytes; {@code source} names the file in errors. */
  public static NpyArray read(byte[] bytes, String source) {
    if (bytes.length < 10 || !Arrays.equals(Arrays.copyOf(bytes, 6), MAGIC)) {
      throw new IllegalArgumentException(source + ": not a .npy file (bad magic)");
    }
    int major = bytes[6] & 0xff;
    ByteBuffer bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    int headerLen;
    int headerStart;
    if (major == 1) {
      headerLen = bb.getShort(8) & 0xffff;
      headerStart = 10;
    } else if (major == 2 || major == 3) {
      if (bytes.length < 12) {
        throw new IllegalArgumentException(source + ": truncated .npy header");
      }
      long len = bb.getInt(8) & 0xffffffffL;
      if (len > bytes.length) {
        throw new IllegalArgumentException(source + ": .npy header length " + len + " exceeds the file");
      }
      headerLen = (int) len;
      headerStart = 12;
    } else {
      throw new IllegalArgumentException(source + ": unsupported .npy format version " + major);
    }
    if (headerStart + headerLen > bytes.length) {
      throw new IllegalArgumentException(source + ": truncated .npy header");
    }
    String header =
        new String(
            bytes,
            headerStart,
            headerLen,
            major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
    HeaderParser parser = new HeaderParser(header.trim(), source);
    String descr = null;
    Boolean fortran = null;
    int[] shape = null;
    parser.expect('{');
    while (true) {
      parser.skipSpace();
      if (parser.peek() == '}') {
        parser.pos++;
        break;
      }
      String key = parser.readString();
      parser.skipSpace();
      parser.expect(':');
      parser.skipSpace();
      switch (key) {
        case "descr":
          descr = parser.readString();
          break;
        case "fortran_order":
          fortran = parser.readBool();
          break;
        case "shape":
          shape = parser.readShape();
          break;
        default:
          throw new IllegalArgumentException(source + ": unexpected .npy header key '" + key + "'");
      }
      parser.skipSpace();
      if (parser.peek() == ',') {
        parser.pos++;
      }
    }
    if (descr == null || fortran == null || shape == null) {
      throw new IllegalArgumentException(source + ": .npy header lacks descr, fortran_order or shape");
    }
    if (fortran) {
      throw new IllegalArgumentException(source + ": Fortran-ordered .npy arrays are not supported");
    }
    DType dtype = DType.fromDescr(descr, source);
    long count = 1;
    for (int s : shape) {
      count *= s;
      if (count > bytes.length) { // also keeps the product far from overflowing a long
        throw new IllegalArgumentException(
            source + ": .npy shape " + Arrays.toString(shape) + " holds more values than the file has bytes");
      }
    }
    long need = count * dtype.itemSize;
    int dataStart = headerStart + headerLen;
    if (bytes.length - dataStart != need) {
      throw new IllegalArgumentException(
          source
              + ": .npy data has "
              + (bytes.length - dataStart)
              + " bytes, shape "
              + Arrays.toString(shape)
              + " of "
              + descr
              + " needs "
              + need);
    }
    ByteBuffer data =
        ByteBuffer.wrap(Arrays.copyOfRange(bytes, dataStart, bytes.length))
            .order(ByteOrder.LITTLE_ENDIAN);
    return new NpyArray(dtype, shape, data);
  }

  private static final class HeaderParser {
    final String s;
    final String source;
    int pos;

    HeaderParser(String s, String source) {
      this.s = s;
      this.source = source;
    }

    char peek() {
      return pos < s.length() ? s.charAt(pos) : '\0';
    }

    void skipSpace() {
      while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
        pos++;
      }
    }

    void expect(char c) {
      skipSpace();
      if (peek() != c) {
        throw bad("expected '" + c + "'");
      }
      pos++;
    }

    String readString() {
      skipSpace();
      char q = peek();
      if (q != '\'' && q != '"') {
        throw bad("expected a quoted string");
      }
      int end = s.indexOf(q, pos + 1);
      if (end < 0) {
        throw bad("unterminated string");
      }
      String out = s.substring(pos + 1, end);
      pos = end + 1;
      return out;
    }

    boolean readBool() {
      if (s.startsWith("True", pos)) {
        pos += 4;
        return true;
      }
      if (s.startsWith("False", pos)) {
        pos += 5;
        return false;
      }
      throw bad("expected True or False");
    }

    int[] readShape() {
      expect('(');
      List<Integer> dims = new ArrayList<>();
      while (true) {
        skipSpace();
        if (peek() == ')') {
          pos++;
          break;
        }
        int start = pos;
        while (Character.isDigit(peek())) {
          pos++;
        }
        if (start == pos) {
          throw bad("expected a dimension");
        }
        if (pos - start > 10) {
          throw bad("dimension too large");
        }
        long d = Long.parseLong(s.substring(start, pos));
        if (d > Integer.MAX_VALUE) {
          throw bad("dimension too large");
        }
        dims.add((int) d);
        skipSpace();
        if (peek() == 'L') { // Python 2 long suffix
          pos++;
        }
        if (peek() == ',') {
          pos++;
        }
      }
      int[] out = new int[dims.size()];
      for (int i = 0; i < out.length; i++) {
        out[i] = dims.get(i);
      }
      return out;
    }

    IllegalArgumentException bad(String what) {
      return new IllegalArgumentException(source + ": bad .npy header (" + what + "): " + s);
    }
  }

  // ----------------------------------------------------------------------------------- writing

  public static byte[] write(float[] values, int... shape) {
    ByteBuffer bb = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      bb.putFloat(v);
    }
    return write(DType.FLOAT32, shape, bb.array(), values.length);
  }

  public static byte[] write(double[] values, int... shape) {
    ByteBuffer bb = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    for (double v : values) {
      bb.putDouble(v);
    }
    return write(DType.FLOAT64, shape, bb.array(), values.length);
  }

  public static byte[] write(DType oneByteType, byte[] values, int... shape) {
    if (oneByteType.itemSize != 1) {
      throw new IllegalArgumentException("byte[] data needs UINT8 or INT8, got " + oneByteType);
    }
    return write(oneByteType, shape, values, values.length);
  }

  private static byte[] write(DType dtype, int[] shape, byte[] payload, int count) {
    long n = 1;
    for (int s : shape) {
      n *= s;
    }
    if (n != count) {
      throw new IllegalArgumentException(
          "shape " + Arrays.toString(shape) + " holds " + n + " values, got " + count);
    }
    StringBuilder dims = new StringBuilder();
    for (int i = 0; i < shape.length; i++) {
      dims.append(shape[i]).append(shape.length == 1 || i + 1 < shape.length ? "," : "");
      if (i + 1 < shape.length) {
        dims.append(' ');
      }
    }
    String header = "{'descr': '" + dtype.descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    // Pad with spaces so that magic + 4 + header + '\n' is a multiple of 64.
    int total = MAGIC.length + 4 + header.length() + 1;
    int pad = (64 - total % 64) % 64;
    StringBuilder sb = new StringBuilder(header);
    for (int i = 0; i < pad; i++) {
      sb.append(' ');
    }
    sb.append('\n');
    byte[] h = sb.toString().getBytes(StandardCharsets.ISO_8859_1);
    ByteArrayOutputStream out = new ByteArrayOutputStream(10 + h.length + payload.length);
    out.write(MAGIC, 0, MAGIC.length);
    out.write(1);
    out.write(0);
    out.write(h.length & 0xff);
    out.write((h.length >> 8) & 0xff);
    out.write(h, 0, h.length);
    out.write(payload, 0, payload.length);
    return out.toByteArray();
  }
}
