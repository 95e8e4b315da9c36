package org.pocketnet.core;

import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Typed access to a parsed JSON object. Every failure names the file and the dotted path of the
 * field, e.g. {@code metadata.json: field 'input.quantization.scale' must be a number, got a
 * string}.
 */
public final class JsonObject {
  private final Map<String, Object> map;
  private final String source;
  private final String path;

  JsonObject(Map<String, Object> map, String source, String path) {
    this.map = map;
    this.source = source;
    this.path = path;
  }

  public String source() {
    return source;
  }

  public Set<String> keys() {
    return map.keySet();
  }

  public boolean has(String key) {
    return map.containsKey(key) && map.get(key) != Json.NULL;
  }

  public Map<String, Object> raw() {
    return map;
  }

  private String fieldPath(String key) {
    return path.isEmpty() ? key : path + "." + key;
  }

  private Object require(String key) {
    if (!map.containsKey(key)) {
      throw new IllegalArgumentException(source + ": missing field '" + fieldPath(key) + "'");
    }
    Object v = map.get(key);
    if (v == Json.NULL) {
      throw new IllegalArgumentException(source + ": field '" + fieldPath(key) + "' is null");
    }
    return v;
  }

  IllegalArgumentException invalid(String key, String expectation) {
    return new IllegalArgumentException(
        source + ": field '" + fieldPath(key) + "' " + expectation);
  }

  private IllegalArgumentException wrongType(String key, String expected, Object got) {
    return invalid(key, "must be " + expected + ", got " + describe(got));
  }

  static String describe(Object v) {
    if (v == Json.NULL || v == null) {
      return "null";
    }
    if (v instanceof String) {
      return "the string \"" + v + "\"";
    }
    if (v instanceof Number || v instanceof Boolean) {
      return v.toString();
    }
    if (v instanceof Map) {
      return "an object";
    }
    if (v instanceof List) {
      return "an array";
    }
    return v.getClass().getSimpleName();
  }

  public String getString(String key) {
    Object v = require(key);
    if (!(v instanceof String)) {
      throw wrongType(key, "a string", v);
    }
    return (String) v;
  }

  public String optString(String key, String fallback) {
    return has(key) ? getString(key) : fallback;
  }

  public double getDouble(String key) {
    Object v = require(key);
    if (!(v instanceof Number)) {
      throw wrongType(key, "a number", v);
    }
    return ((Number) v).doubleValue();
  }

  public double optDouble(String key, double fallback) {
    return has(key) ? getDouble(key) : fallback;
  }

  public long getLong(String key) {
    Object v = require(key);
    if (v instanceof Long) {
      return (Long) v;
    }
    if (v instanceof Double) {
      double d = (Double) v;
      if (d == Math.rint(d) && Math.abs(d) < 9.007199254740992E15) {
        return (long) d;
      }
    }
    throw wrongType(key, "an integer", v);
  }

  public int getInt(String key) {
    long v = getLong(key);
    if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
      throw invalid(key, "is out of the int range: " + v);
    }
    return (int) v;
  }

  public int optInt(String key, int fallback) {
    return has(key) ? getInt(key) : fallback;
  }

  public boolean getBoolean(String key) {
    Object v = require(key);
    if (!(v instanceof Boolean)) {
      throw wrongType(key, "true or false", v);
    }
    return (Boolean) v;
  }

  public boolean optBoolean(String key, boolean fallback) {
    return has(key) ? getBoolean(key) : fallback;
  }

  public JsonObject getObject(String key) {
    Object v = require(key);
    if (!(v instanceof Map)) {
      throw wrongType(key, "an object", v);
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> m = (Map<String, Object>) v;
    return new JsonObject(m, source, fieldPath(key));
  }

  /** The object under {@code key}, or null when the field is present and JSON {@code null}. */
  public JsonObject getObjectOrNull(String key) {
    if (!map.containsKey(key)) {
      throw new IllegalArgumentException(source + ": missing field '" + fieldPath(key) + "'");
    }
    return map.get(key) == Json.NULL ? null : getObject(key);
  }

  public List<Object> getArray(String key) {
    Object v = require(key);
    if (!(v instanceof List)) {
      throw wrongType(key, "an array", v);
    }
    @SuppressWarnings("unchecked")
    List<Object> list = (List<Object>) v;
    return list;
  }

  /** An array of objects, each wrapped for typed access (paths read {@code key[i].field}). */
  public JsonObject[] getObjectArray(String key) {
    List<Object> list = getArray(key);
    JsonObject[] out = new JsonObject[list.size()];
    for (int i = 0; i < out.length; i++) {
      Object item = list.get(i);
      String itemPath = fieldPath(key) + "[" + i + "]";
      if (!(item instanceof Map)) {
        throw new IllegalArgumentException(
            source + ": field '" + itemPath + "' must be an object, got " + describe(item));
      }
      @SuppressWarnings("unchecked")
      Map<String, Object> m = (Map<String, Object>) item;
      out[i] = new JsonObject(m, source, itemPath);
    }
    return out;
  }

  /** A numeric array, checked for length when {@code expectedLength >= 0}. */
  public double[] getDoubleArray(String key, int expectedLength) {
    List<Object> list = getArray(key);
    if (expectedLength >= 0 && list.size() != expectedLength) {
      throw invalid(key, "must have " + expectedLength + " numbers, got " + list.size());
    }
    double[] out = new double[list.size()];
    for (int i = 0; i < out.length; i++) {
      Object item = list.get(i);
      if (!(item instanceof Number)) {
        throw invalid(key, "must hold numbers only, item " + i + " is " + describe(item));
      }
      out[i] = ((Number) item).doubleValue();
    }
    return out;
  }

  public int[] getIntArray(String key, int expectedLength) {
    double[] values = getDoubleArray(key, expectedLength);
    int[] out = new int[values.length];
    for (int i = 0; i < values.length; i++) {
      if (values[i] != Math.rint(values[i]) || Math.abs(values[i]) > Integer.MAX_VALUE) {
        throw invalid(key, "must hold integers only, item " + i + " is " + values[i]);
      }
      out[i] = (int) values[i];
    }
    return out;
  }

  /** A rows x cols numeric matrix given as an array of arrays. */
  public double[][] getMatrix(String key, int rows, int cols) {
    List<Object> list = getArray(key);
    if (rows >= 0 && list.size() != rows) {
      throw invalid(key, "must have " + rows + " rows, got " + list.size());
    }
    double[][] out = new double[list.size()][];
    for (int r = 0; r < out.length; r++) {
      Object row = list.get(r);
      if (!(row instanceof List) || (cols >= 0 && ((List<?>) row).size() != cols)) {
        throw invalid(key, "row " + r + " must be an array of " + cols + " numbers");
      }
      List<?> items = (List<?>) row;
      out[r] = new double[items.size()];
      for (int c = 0; c < items.size(); c++) {
        Object item = items.get(c);
        if (!(item instanceof Number)) {
          throw invalid(key, "row " + r + " item " + c + " is " + describe(item) + ", not a number");
        }
        out[r][c] = ((Number) item).doubleValue();
      }
    }
    return out;
  }
}
