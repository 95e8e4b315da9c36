package org.pocketnet.core;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Map;

/**
 * A verification bundle directory as written by {@code python -m pocketnet_tf.convert}: the
 * {@code .tflite}, the {@code metadata.json} side-car and the {@code golden/} test vectors (the
 * conversion report beside them is not read). Opening it parses the metadata and checks the
 * seal ({@link BundleSeal}: every file's size and SHA-256 against {@code manifest.json}, whose own
 * SHA-256 the metadata states), so a swapped, truncated or edited file is refused before it runs.
 */
public final class VerificationBundle {
  public static final String METADATA_FILE = "metadata.json";

  public final File dir;
  public final BundleMetadata metadata;
  /** The sealed files (relative path to size and SHA-256), checked when the bundle was opened. */
  public final Map<String, BundleSeal.Entry> files;

  private VerificationBundle(File dir, BundleMetadata metadata, Map<String, BundleSeal.Entry> files) {
    this.dir = dir;
    this.metadata = metadata;
    this.files = files;
  }

  public static VerificationBundle open(File dir) throws IOException {
    File metaFile = new File(dir, METADATA_FILE);
    if (!metaFile.exists() && !Files.isSymbolicLink(metaFile.toPath())) {
      throw new FileNotFoundException(metaFile + ": bundle metadata not found");
    }
    BundleMetadata meta =
        BundleMetadata.parse(
            new String(FileIo.readBounded(metaFile, BundleSeal.MAX_JSON_BYTES), StandardCharsets.UTF_8),
            metaFile.getPath());
    File model = new File(dir, meta.modelFile);
    if (!model.isFile()) {
      throw new FileNotFoundException(model + ": model file named in " + metaFile + " not found");
    }
    Map<String, BundleSeal.Entry> files = BundleSeal.check(dir, meta);
    return new VerificationBundle(dir, meta, files);
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
