package org.pocketnet.demo;

import android.content.res.AssetManager;
import com.google.ai.edge.litert.Accelerator;
import com.google.ai.edge.litert.CompiledModel;
import com.google.ai.edge.litert.LiteRtException;
import com.google.ai.edge.litert.TensorBuffer;
import java.io.File;
import java.util.List;

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

  /** Runs the face model on a preprocessed float32 input; returns its float32 output. */
  float[] runEmbedding(float[] input) throws LiteRtException {
    inputs.get(0).writeFloat(input);
    model.run(inputs, outputs);
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
