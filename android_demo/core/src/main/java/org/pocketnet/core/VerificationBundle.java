package org.pocketnet.core;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * A verification bundle directory as written by {@code python -m pocketnet_tf.convert}: the
 * {@code .tflite}, the {@code metadata.json} side-car and the {@code golden/} test vectors (the
 * conversion report beside them is not read). Opening it parses the metadata
 * and checks the model file against the SHA-256 it states, so a swapped or truncated model is
 * refused before it runs.
 */
public final class VerificationBundle {
  public static final String METADATA_FILE = "metadata.json";

  public final File dir;
  public final BundleMetadata metadata;

  private VerificationBundle(File dir, BundleMetadata metadata) {
    this.dir = dir;
    this.metadata = metadata;
  }

  public static VerificationBundle open(File dir) throws IOException {
    File metaFile = new File(dir, METADATA_FILE);
    if (!metaFile.isFile()) {
      throw new FileNotFoundException(metaFile + ": bundle metadata not found");
    }
    BundleMetadata meta =
        BundleMetadata.parse(
            new String(FileIo.readAll(metaFile), StandardCharsets.UTF_8), metaFile.getPath());
    File model = new File(dir, meta.modelFile);
    if (!model.isFile()) {
      throw new FileNotFoundException(model + ": model file named in " + metaFile + " not found");
    }
    String actual = FileIo.sha256Hex(model);
    if (!actual.equals(meta.modelSha256)) {
      throw new IOException(
          model + ": SHA-256 " + actual + " does not match " + meta.modelSha256 + " in " + metaFile
              + " (corrupt or replaced model)");
    }
    return new VerificationBundle(dir, meta);
  }

  public File modelFile() {
    return new File(dir, metadata.modelFile);
  }

  public FaceAligner aligner() {
    return new FaceAligner(metadata.alignmentTemplate, metadata.inputWidth, metadata.inputHeight);
  }

  public Preprocessor preprocessor() {
    return new Preprocessor(metadata);
  }

  /** Reads and checks the bundle's golden vectors ({@code golden/golden.json} and its files). */
  public GoldenSet golden() throws IOException {
    return GoldenSet.read(this);
  }
}
