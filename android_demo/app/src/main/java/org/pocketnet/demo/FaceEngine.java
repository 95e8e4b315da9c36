package org.pocketnet.demo;

import android.content.Context;
import android.os.SystemClock;
import java.io.File;
import java.io.IOException;
import java.util.List;
import org.pocketnet.core.BlazeFace;
import org.pocketnet.core.BundleMetadata;
import org.pocketnet.core.FaceAligner;
import org.pocketnet.core.Gallery;
import org.pocketnet.core.Preprocessor;
import org.pocketnet.core.RgbImage;
import org.pocketnet.core.SimilarityTransform;
import org.pocketnet.core.VerificationBundle;

/**
 * The recognition pipeline: BlazeFace detection → similarity alignment to the bundle's template
 * → preprocessing exactly as the metadata says → the bundle's model (LiteRT) → gallery search
 * with the bundle's threshold. All maths lives in the pure-Java core; this class adds LiteRT and
 * storage.
 *
 * <p>Not thread-safe: {@link MainActivity} runs every call on one executor.
 */
final class FaceEngine implements AutoCloseable {
  static final String GALLERY_FILE = "gallery.json";
  private static final int THREADS = 4;

  /** Outcome of one image. {@code face == null} when no face was found. */
  static final class Result {
    BlazeFace.Detection face;
    RgbImage crop;
    float[] embedding;
    Gallery.Match match;
    long detectMillis;
    long embedMillis;
  }

  final VerificationBundle bundle;
  private final LiteRtModel detector;
  private final LiteRtModel embedder;
  private final FaceAligner aligner;
  private final Preprocessor preprocessor;
  private final File galleryFile;
  private Gallery gallery;

  FaceEngine(Context context) throws Exception {
    bundle = BundleInstaller.install(context);
    BundleMetadata meta = bundle.metadata;
    if (!meta.hasThreshold()) {
      throw new IOException(
          meta.source + ": \"verification\" is null, so the bundle states no decision threshold;"
              + " export it with --bin=<verification set>");
    }
    aligner = bundle.aligner();
    preprocessor = bundle.preprocessor();
    detector = LiteRtModel.fromAsset(context.getAssets(), BundleInstaller.DETECTOR_ASSET, THREADS);
    if (detector.numOutputs() != 2) {
      throw new IOException(BundleInstaller.DETECTOR_ASSET + ": expected 2 outputs (BlazeFace)");
    }
    embedder = LiteRtModel.fromFile(bundle.modelFile(), THREADS);
    galleryFile = new File(context.getFilesDir(), GALLERY_FILE);
    gallery =
        galleryFile.isFile()
            ? Gallery.load(galleryFile, meta.modelSha256)
            : new Gallery(meta.modelSha256, meta.embeddingSize);
  }

  /** The detector's two outputs, told apart by size (896×16 box regressors, 896 scores). */
  private float[][] runDetector(float[] input) throws Exception {
    float[][] out = detector.runFloat(input);
    if (out[0].length == BlazeFace.NUM_ANCHORS * BlazeFace.NUM_COORDS) {
      return out;
    }
    return new float[][] {out[1], out[0]};
  }

  float[] embed(float[] input) throws Exception {
    return preprocessor.checkEmbedding(embedder.runEmbedding(input));
  }

  Result process(RgbImage image) throws Exception {
    Result r = new Result();
    long t0 = SystemClock.elapsedRealtime();
    List<BlazeFace.Detection> faces =
        BlazeFace.detect(
            image, this::runDetector, BlazeFace.DEFAULT_MIN_SCORE, BlazeFace.DEFAULT_IOU_THRESHOLD);
    r.detectMillis = SystemClock.elapsedRealtime() - t0;
    if (faces.isEmpty()) {
      return r;
    }
    r.face = faces.get(0); // best score first
    SimilarityTransform t = aligner.transformFromBlazeFace(r.face.keypoints);
    r.crop = aligner.crop(image, t);
    float[] input = preprocessor.toInput(r.crop);
    long t1 = SystemClock.elapsedRealtime();
    r.embedding = embed(input);
    r.embedMillis = SystemClock.elapsedRealtime() - t1;
    r.match = gallery.search(r.embedding, bundle.metadata.threshold);
    return r;
  }

  Gallery gallery() {
    return gallery;
  }

  /** Enrols and saves atomically; on a failed save the in-memory gallery is rolled back. */
  void enrol(String name, float[] embedding) throws IOException {
    Gallery next = Gallery.fromJson(gallery.toJson(), galleryFile.getPath());
    next.enrol(name, embedding);
    next.save(galleryFile);
    gallery = next;
  }

  void remove(String name) throws IOException {
    Gallery next = Gallery.fromJson(gallery.toJson(), galleryFile.getPath());
    if (next.remove(name)) {
      next.save(galleryFile);
      gallery = next;
    }
  }

  @Override
  public void close() {
    detector.close();
    embedder.close();
  }
}
