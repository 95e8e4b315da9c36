package org.pocketnet.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small, strict JSON reader and writer (RFC 8259), enough for the bundle metadata and the
 * gallery file without a third-party dependency.
 *
 * <p>Values map to Java as: object → {@code Map<String, Object>} (insertion order kept), array →
 * {@code List<Object>}, string → {@code String}, number → {@code Long} when written without a
 * fraction or exponent and within range, otherwise {@code Double}, {@code true/false} →
 * {@code Boolean}, {@code null} → {@link #NULL}. Duplicate keys, trailing commas, leading zeros,
 * unescaped control characters, lone surrogates, trailing text and nesting deeper than
 * {@link #MAX_DEPTH} are rejected with the line and column of the problem.
 */
public final class Json {
  /** The JSON {@code null} (kept distinct from a missing key). */
  public static final Object NULL =
      new Object() {
        @Override
        public String toString() {
          return "null";
        }
      };

  public static final int MAX_DEPTH = 64;

  private final String text;
  private final String source;
  private int pos;

  private Json(String text, String source) {
    this.text = text;
    this.source = source;
  }

  /** Parses {@code text}; {@code source} names the file in error messages. */
  public static Object parse(String text, String source) {
    Json parser = new Json(text, source);
    parser.skipWhitespace();
    Object value = parser.readValue(0);
    parser.skipWhitespace();
    if (parser.pos != text.length()) {
      throw parser.error("unexpected text after the JSON value");
    }
    return value;
  }

  /** Parses a JSON document whose top level must be an object. */
  public static JsonObject parseObject(String text, String source) {
    Object value = parse(text, source);
    if (!(value instanceof Map)) {
      throw new IllegalArgumentException(source + ": top-level JSON value must be an object");
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> map = (Map<String, Object>) value;
    return new JsonObject(map, source, "");
  }

  private Object readValue(int depth) {
    if (depth > MAX_DEPTH) {
      throw error("nesting deeper than " + MAX_DEPTH);
    }
    if (pos >= text.length()) {
      throw error("unexpected end of input");
    }
    char c = text.charAt(pos);
    switch (c) {
      case '{':
        return readObject(depth);
      case '[':
        return readArray(depth);
      case '"':
        return readString();
      case 't':
        expectWord("true");
        return Boolean.TRUE;
      case 'f':
        expectWord("false");
        return Boolean.FALSE;
      case 'n':
        expectWord("null");
        return NULL;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) {
          return readNumber();
        }
        throw error("unexpected character '" + printable(c) + "'");
    }
  }

  private Map<String, Object> readObject(int depth) {
    pos++; // '{'
    Map<String, Object> map = new LinkedHashMap<>();
    skipWhitespace();
    if (peek() == '}') {
      pos++;
      return map;
    }
    while (true) {
      skipWhitespace();
      if (peek() != '"') {
        throw error("expected a string key");
      }
      int keyPos = pos;
      String key = readString();
      skipWhitespace();
      if (peek() != ':') {
        throw error("expected ':' after key");
      }
      pos++;
      skipWhitespace();
      Object value = readValue(depth + 1);
      if (map.containsKey(key)) {
        pos = keyPos;
        throw error("duplicate key \"" + key + "\"");
      }
      map.put(key, value);
      skipWhitespace();
      char c = peek();
      if (c == ',') {
        pos++;
        continue;
      }
      if (c == '}') {
        pos++;
        return map;
      }
      throw error("expected ',' or '}' in object");
    }
  }

  private List<Object> readArray(int depth) {
    pos++; // '['
    List<Object> list = new ArrayList<>();
    skipWhitespace();
    if (peek() == ']') {
      pos++;
      return list;
    }
    while (true) {
      skipWhitespace();
      list.add(readValue(depth + 1));
      skipWhitespace();
      char c = peek();
      if (c == ',') {
        pos++;
        continue;
      }
      if (c == ']') {
        pos++;
        return list;
      }
      throw error("expected ',' or ']' in array");
    }
  }

  private String readString() {
    pos++; // opening quote
    StringBuilder sb = new StringBuilder();
    while (true) {
      if (pos >= text.length()) {
        throw error("unterminated string");
      }
      char c = text.charAt(pos++);
      if (c == '"') {
        break;
      }
      if (c < 0x20) {
        pos--;
        throw error("unescaped control character in string");
      }
      if (c != '\\') {
        sb.append(c);
        continue;
      }
      if (pos >= text.length()) {
        throw error("unterminated escape");
      }
      char e = text.charAt(pos++);
      switch (e) {
        case '"':
          sb.append('"');
          break;
        case '\\':
          sb.append('\\');
          break;
        case '/':
          sb.append('/');
          break;
        case 'b':
          sb.append('\b');
          break;
        case 'f':
          sb.append('\f');
          break;
        case 'n':
          sb.append('\n');
          break;
        case 'r':
          sb.append('\r');
          break;
        case 't':
          sb.append('\t');
          break;
        case 'u':
          sb.append(readHex4());
          break;
        default:
          pos--;
          throw error("invalid escape '\\" + printable(e) + "'");
      }
    }
    String s = sb.toString();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (Character.isHighSurrogate(c)) {
        if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
          throw error("lone surrogate in string");
        }
        i++;
      } else if (Character.isLowSurrogate(c)) {
        throw error("lone surrogate in string");
      }
    }
    return s;
  }

  private char readHex4() {
    if (pos + 4 > text.length()) {
      throw error("truncated \\u escape");
    }
    int v = 0;
    for (int i = 0; i < 4; i++) {
      int d = Character.digit(text.charAt(pos + i), 16);
      if (d < 0) {
        throw error("invalid \\u escape");
      }
      v = v * 16 + d;
    }
    pos += 4;
    return (char) v;
  }

  private Object readNumber() {
    int start = pos;
    boolean integral = true;
    if (peek() == '-') {
      pos++;
    }
    if (peek() == '0') {
      pos++;
      if (Character.isDigit(peek())) {
        throw error("leading zeros are not allowed");
      }
    } else if (Character.isDigit(peek())) {
      while (Character.isDigit(peek())) {
        pos++;
      }
    } else {
      throw error("expected a digit");
    }
    if (peek() == '.') {
      integral = false;
      pos++;
      if (!Character.isDigit(peek())) {
        throw error("expected a digit after '.'");
      }
      while (Character.isDigit(peek())) {
        pos++;
      }
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      pos++;
      if (peek() == '+' || peek() == '-') {
        pos++;
      }
      if (!Character.isDigit(peek())) {
        throw error("expected a digit in exponent");
      }
      while (Character.isDigit(peek())) {
        pos++;
      }
    }
    String literal = text.substring(start, pos);
    if (integral) {
      try {
        return Long.parseLong(literal);
      } catch (NumberFormatException tooBig) {
        // falls through to a double
      }
    }
    double d = Double.parseDouble(literal);
    if (Double.isInfinite(d)) {
      pos = start;
      throw error("number out of range");
    }
    return d;
  }

  private void expectWord(String word) {
    if (!text.startsWith(word, pos)) {
      throw error("invalid literal");
    }
    pos += word.length();
  }

  private char peek() {
    return pos < text.length() ? text.charAt(pos) : '\0';
  }

  private void skipWhitespace() {
    while (pos < text.length()) {
      char c = text.charAt(pos);
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        pos++;
      } else {
        break;
      }
    }
  }

  private IllegalArgumentException error(String message) {
    int line = 1;
    int column = 1;
    for (int i = 0; i < Math.min(pos, text.length()); i++) {
      if (text.charAt(i) == '\n') {
        line++;
        column = 1;
      } else {
        column++;
      }
    }
    return new IllegalArgumentException(
        source + ": invalid JSON at line " + line + ", column " + column + ": " + message);
  }

  private static String printable(char c) {
    return c < 0x20 || c > 0x7e ? String.format("\\u%04x", (int) c) : String.valueOf(c);
  }

  // ------------------------------------------------------------------------------------ writer

  /** Serialises maps, lists, strings, numbers, booleans and {@link #NULL} (or Java null). */
  public static String write(Object value) {
    StringBuilder sb = new StringBuilder();
    writeValue(sb, value, 0, false);
    return sb.toString();
  }

  /** Like {@link #write} with two-space indentation and a trailing newline. */
  public static String writePretty(Object value) {
    StringBuilder sb = new StringBuilder();
    writeValue(sb, value, 0, true);
    return sb.append('\n').toString();
  }

  private static void writeValue(StringBuilder sb, Object value, int indent, boolean pretty) {
    if (value == null || value == NULL) {
      sb.append("null");
    } else if (value instanceof String) {
      writeString(sb, (String) value);
    } else if (value instanceof Boolean) {
      sb.append(value.toString());
    } else if (value instanceof Float) {
      float f = (Float) value;
      if (Float.isNaN(f) || Float.isInfinite(f)) {
        throw new IllegalArgumentException("JSON cannot hold " + f);
      }
      // Float.toString gives enough digits to read back the same float exactly.
      sb.append(Float.toString(f));
    } else if (value instanceof Double) {
      double d = (Double) value;
      if (Double.isNaN(d) || Double.isInfinite(d)) {
        throw new IllegalArgumentException("JSON cannot hold " + d);
      }
      sb.append(Double.toString(d));
    } else if (value instanceof Number) {
      sb.append(((Number) value).longValue());
    } else if (value instanceof float[]) {
      float[] arr = (float[]) value;
      sb.append('[');
      for (int i = 0; i < arr.length; i++) {
        if (i > 0) {
          sb.append(", ");
        }
        writeValue(sb, arr[i], indent, false);
      }
      sb.append(']');
    } else if (value instanceof Map) {
      Map<?, ?> map = (Map<?, ?>) value;
      if (map.isEmpty()) {
        sb.append("{}");
        return;
      }
      sb.append('{');
      boolean first = true;
      for (Map.Entry<?, ?> e : map.entrySet()) {
        if (!first) {
          sb.append(',');
        }
        first = false;
        newline(sb, indent + 1, pretty);
        writeString(sb, String.valueOf(e.getKey()));
        sb.append(pretty ? ": " : ":");
        writeValue(sb, e.getValue(), indent + 1, pretty);
      }
      newline(sb, indent, pretty);
      sb.append('}');
    } else if (value instanceof List) {
      List<?> list = (List<?>) value;
      if (list.isEmpty()) {
        sb.append("[]");
        return;
      }
      sb.append('[');
      boolean first = true;
      for (Object item : list) {
        if (!first) {
          sb.append(',');
        }
        first = false;
        newline(sb, indent + 1, pretty);
        writeValue(sb, item, indent + 1, pretty);
      }
      newline(sb, indent, pretty);
      sb.append(']');
    } else {
      throw new IllegalArgumentException("cannot write " + value.getClass().getName() + " as JSON");
    }
  }

  private static void newline(StringBuilder sb, int indent, boolean pretty) {
    if (!pretty) {
      return;
    }
    sb.append('\n');
    for (int i = 0; i < indent; i++) {
      sb.append("  ");
    }
  }

  private static void writeString(StringBuilder sb, String s) {
    sb.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"':
          sb.append("\\\"");
          break;
        case '\\':
          sb.append("\\\\");
          break;
        case '\n':
          sb.append("\\n");
          break;
        case '\r':
          sb.append("\\r");
          break;
        case '\t':
          sb.append("\\t");
          break;
        default:
          if (c < 0x20) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            sb.append(c);
          }
      }
    }
    sb.append('"');
  }
}
