package org.pocketnet.demo;

import android.content.res.AssetManager;
import com.google.ai.edge.litert.Accelerator;
import com.google.ai.edge.litert.CompiledModel;
import com.google.ai.edge.litert.LiteRtException;
import com.google.ai.edge.litert.TensorBuffer;
import java.io.File;
import java.util.List;
import org.pocketnet.core.BundleMetadata;
import org.pocketnet.core.ModelInput;

/**
 * One {@code .tflite} model compiled by LiteRT 2.x ({@link CompiledModel}, the API LiteRT
 * recommends for new code) on the CPU (XNNPACK), with its input and output buffers created once
 * and reused. The only class of the app that touches the LiteRT API.
 *
 * <p>Not thread-safe: the app calls it from one executor.
 */
final class LiteRtModel implements AutoCloseable {
  private final CompiledModel model;
  private final List<TensorBuffer> inputs;
  private final List<TensorBuffer> outputs;

  private LiteRtModel(CompiledModel model) throws LiteRtException {
    this.model = model;
    this.inputs = model.createInputBuffers();
    this.outputs = model.createOutputBuffers();
  }

  private static CompiledModel.Options cpuOptions(int threads) {
    CompiledModel.Options options = new CompiledModel.Options(Accelerator.CPU);
    options.setCpuOptions(new CompiledModel.CpuOptions(threads, null, null));
    return options;
  }

  /** Compiles a model file (the bundle's, after its SHA-256 was checked). */
  static LiteRtModel fromFile(File file, int threads) throws LiteRtException {
    return new LiteRtModel(CompiledModel.create(file.getAbsolutePath(), cpuOptions(threads)));
  }

  /** Compiles a model stored uncompressed in the APK's assets. */
  static LiteRtModel fromAsset(AssetManager assets, String name, int threads) throws LiteRtException {
    return new LiteRtModel(CompiledModel.create(assets, name, cpuOptions(threads)));
  }

  int numOutputs() {
    return outputs.size();
  }

  /** Feeds a float input, runs, and returns every output as floats. */
  float[][] runFloat(float[] input) throws LiteRtException {
    inputs.get(0).writeFloat(input);
    model.run(inputs, outputs);
    float[][] out = new float[outputs.size()][];
    for (int i = 0; i < out.length; i++) {
      out[i] = outputs.get(i).readFloat();
    }
    return out;
  }

  /**
   * Runs the face model on a preprocessed input; returns the raw output as floats, or (for an
   * int8 output) as the quantised bytes in {@code int8Out[0]}.
   */
  float[] runEmbedding(ModelInput input, BundleMetadata.DType outputType, byte[][] int8Out)
      throws LiteRtException {
    switch (input.dtype) {
      case FLOAT32:
        inputs.get(0).writeFloat(input.floats);
        break;
      case INT8:
        inputs.get(0).writeInt8(input.bytes);
        break;
      default:
        // TensorBuffer has no uint8 writer in LiteRT 2.x; export int8 or float models instead.
        throw new IllegalArgumentException("uint8 model inputs are not supported by this app");
    }
    model.run(inputs, outputs);
    if (outputType == BundleMetadata.DType.INT8) {
      int8Out[0] = outputs.get(0).readInt8();
      return null;
    }
    return outputs.get(0).readFloat();
  }

  @Override
  public void close() {
    for (TensorBuffer b : inputs) {
      b.close();
    }
    for (TensorBuffer b : outputs) {
      b.close();
    }
    model.close();
  }
}
