package org.pocketnet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.Test;

public class JsonTest {

  @Test
  public void parsesEveryKindOfValue() {
    Object v =
        Json.parse(
            "{\"a\": [1, -2.5, 3e2, 0, -0.0, 12345678901234],"
                + " \"s\": \"x\\\"y\\\\z\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\","
                + " \"t\": true, \"f\": false, \"n\": null, \"o\": {}}",
            "test.json");
    @SuppressWarnings("unchecked")
    Map<String, Object> m = (Map<String, Object>) v;
    assertEquals(Arrays.asList("a", "s", "t", "f", "n", "o"), Arrays.asList(m.keySet().toArray()));
    List<?> a = (List<?>) m.get("a");
    assertEquals(1L, a.get(0));
    assertEquals(-2.5, a.get(1));
    assertEquals(300.0, a.get(2));
    assertEquals(0L, a.get(3));
    assertEquals(Double.doubleToLongBits(-0.0), Double.doubleToLongBits((Double) a.get(4)));
    assertEquals(12345678901234L, a.get(5));
    assertEquals("x\"y\\z/\b\f\n\r\t\u00e9\ud83d\ude00", m.get("s"));
    assertEquals(Boolean.TRUE, m.get("t"));
    assertEquals(Boolean.FALSE, m.get("f"));
    assertSame(Json.NULL, m.get("n"));
    assertTrue(((Map<?, ?>) m.get("o")).isEmpty());
  }

  @Test
  public void hugeIntegerBecomesDouble() {
    assertEquals(1e20, Json.parse("100000000000000000000", "x"));
  }

  private static void assertRejected(String text, String expectedFragment) {
    try {
      Json.parse(text, "bad.json");
      fail("accepted invalid JSON: " + text);
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().startsWith("bad.json: invalid JSON at line "));
      assertTrue(e.getMessage(), e.getMessage().contains(expectedFragment));
    }
  }

  @Test
  public void rejectsInvalidDocumentsWithPosition() {
    assertRejected("[1, 2,]", "unexpected character ']'");
    assertRejected("{\"a\": 1,}", "expected a string key");
    assertRejected("{\"a\": 1, \"a\": 2}", "duplicate key \"a\"");
    assertRejected("[01]", "leading zeros");
    assertRejected("[1.]", "expected a digit after '.'");
    assertRejected("[1e]", "expected a digit in exponent");
    assertRejected("\"a\tb\"", "unescaped control character");
    assertRejected("\"\\x\"", "invalid escape");
    assertRejected("\"\\ud800\"", "lone surrogate");
    assertRejected("{} x", "unexpected text after");
    assertRejected("[NaN]", "unexpected character 'N'");
    assertRejected("[1e999]", "number out of range");
    assertRejected("[tru]", "invalid literal");
    assertRejected("", "unexpected end of input");
    assertRejected("{\"a\" 1}", "expected ':'");
    StringBuilder deep = new StringBuilder();
    for (int i = 0; i <= Json.MAX_DEPTH + 1; i++) {
      deep.append('[');
    }
    assertRejected(deep.toString(), "nesting deeper than");
  }

  @Test
  public void errorReportsLineAndColumn() {
    try {
      Json.parse("{\n  \"a\": 1,\n  \"b\": ?\n}", "meta.json");
      fail();
    } catch (IllegalArgumentException e) {
      assertEquals(
          "meta.json: invalid JSON at line 3, column 8: unexpected character '?'", e.getMessage());
    }
  }

  @Test
  public void writeThenParseRoundTrips() {
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("name", "tab\there \"quoted\" \u0001");
    root.put("list", Arrays.<Object>asList(1L, 2.5, Boolean.TRUE, Json.NULL, "x"));
    root.put("nested", new LinkedHashMap<String, Object>());
    for (String text : new String[] {Json.write(root), Json.writePretty(root)}) {
      assertEquals(root.toString(), Json.parse(text, "rt").toString());
    }
    try {
      Json.write(Double.NaN);
      fail("NaN written");
    } catch (IllegalArgumentException expected) {
      // JSON has no NaN
    }
  }

  @Test
  public void floatsSurviveAsDoublesBitForBit() {
    Random rng = new Random(7);
    for (int i = 0; i < 20000; i++) {
      float f = Float.intBitsToFloat(rng.nextInt());
      if (!Float.isFinite(f)) {
        continue;
      }
      Object back = Json.parse(Json.write((double) f), "f");
      float g = ((Number) back).floatValue();
      assertEquals(Float.floatToIntBits(f), Float.floatToIntBits(g));
      Object back2 = Json.parse(Json.write(f), "f");
      assertEquals(Float.floatToIntBits(f), Float.floatToIntBits(((Number) back2).floatValue()));
    }
  }

  @Test
  public void typedAccessNamesTheFieldPath() {
    JsonObject o =
        Json.parseObject(
            "{\"input\": {\"size\": [112, 112], \"scale\": \"x\", \"n\": 2.0, \"f\": 2.5}}",
            "metadata.json");
    JsonObject input = o.getObject("input");
    assertEquals(112, input.getIntArray("size", 2)[1]);
    assertEquals(2, input.getInt("n"));
    try {
      input.getDouble("scale");
      fail();
    } catch (IllegalArgumentException e) {
      assertEquals(
          "metadata.json: field 'input.scale' must be a number, got the string \"x\"",
          e.getMessage());
    }
    try {
      input.getInt("f");
      fail();
    } catch (IllegalArgumentException e) {
      assertEquals("metadata.json: field 'input.f' must be an integer, got 2.5", e.getMessage());
    }
    try {
      input.getIntArray("size", 3);
      fail();
    } catch (IllegalArgumentException e) {
      assertEquals("metadata.json: field 'input.size' must have 3 numbers, got 2", e.getMessage());
    }
    try {
      o.getObject("output");
      fail();
    } catch (IllegalArgumentException e) {
      assertEquals("metadata.json: missing field 'output'", e.getMessage());
    }
  }
}
