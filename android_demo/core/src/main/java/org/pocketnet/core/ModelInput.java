package org.pocketnet.core;

/** One NHWC model input: float values, or quantised 8-bit values (int8 or uint8 bit patterns). */
public final class ModelInput {
  public final BundleMetadata.DType dtype;
  /** Set for FLOAT32. */
  public final float[] floats;
  /** Set for INT8/UINT8. */
  public final byte[] bytes;

  private ModelInput(BundleMetadata.DType dtype, float[] floats, byte[] bytes) {
    this.dtype = dtype;
    this.floats = floats;
    this.bytes = bytes;
  }

  public static ModelInput ofFloats(float[] values) {
    return new ModelInput(BundleMetadata.DType.FLOAT32, values, null);
  }

  public static ModelInput ofBytes(BundleMetadata.DType dtype, byte[] values) {
    if (dtype == BundleMetadata.DType.FLOAT32) {
      throw new IllegalArgumentException("byte input needs INT8 or UINT8");
    }
    return new ModelInput(dtype, null, values);
  }

  public int length() {
    return floats != null ? floats.length : bytes.length;
  }
}
