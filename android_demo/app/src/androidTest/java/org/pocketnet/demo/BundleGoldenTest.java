package org.pocketnet.demo;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import android.content.Context;
import androidx.test.ext.junit.runners.AndroidJUnit4;
import androidx.test.platform.app.InstrumentationRegistry;
import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.pocketnet.core.BlazeFace;
import org.pocketnet.core.FileIo;
import org.pocketnet.core.Gallery;
import org.pocketnet.core.GoldenCheck;
import org.pocketnet.core.NpyArray;
import org.pocketnet.core.VerificationBundle;

/**
 * On a device or emulator: the bundle in {@code assets/bundle/} through the real LiteRT runtime.
 *
 * <p>Run: {@code ./gradlew :app:connectedDebugAndroidTest} (see README.md).
 */
@RunWith(AndroidJUnit4.class)
public class BundleGoldenTest {

  private static Context context() {
    return InstrumentationRegistry.getInstrumentation().getTargetContext();
  }

  @Test
  public void goldenVectorsMatchThroughLiteRt() throws Exception {
    VerificationBundle bundle = BundleInstaller.install(context());
    assertNotNull("the bundle ships no golden vectors", bundle.metadata.golden);
    try (LiteRtModel model = LiteRtModel.fromFile(bundle.modelFile(), 2)) {
      org.pocketnet.core.Preprocessor pre = bundle.preprocessor();
      GoldenCheck.Report report =
          GoldenCheck.run(
              bundle,
              input -> {
                byte[][] int8 = new byte[1][];
                float[] raw = model.runEmbedding(input, bundle.metadata.outputDType, int8);
                return pre.outputToEmbedding(raw, int8[0]);
              });
      android.util.Log.i("BundleGoldenTest", report.toString());
      assertTrue(report.toString(), report.images > 0);
      assertEquals(report.toString(), 0, report.inputMismatches);
      assertTrue(report.toString(), report.passed());
    }
  }

  @Test
  public void goldenEmbeddingsMatchThemselvesInTheGallery() throws Exception {
    VerificationBundle bundle = BundleInstaller.install(context());
    NpyArray emb = bundle.readGolden(bundle.metadata.golden.embeddings);
    int n = emb.shape[0];
    int d = emb.shape[1];
    float[] all = emb.toFloatArray();
    Gallery g = new Gallery(bundle.metadata.modelSha256, d);
    for (int i = 0; i < n; i++) {
      float[] v = new float[d];
      System.arraycopy(all, i * d, v, 0, d);
      g.enrol("golden" + i, v);
    }
    File file = new File(context().getCacheDir(), "golden_gallery.json");
    g.save(file);
    Gallery back = Gallery.load(file, bundle.metadata.modelSha256);
    for (int i = 0; i < n; i++) {
      float[] v = new float[d];
      System.arraycopy(all, i * d, v, 0, d);
      Gallery.Match m = back.search(v, bundle.metadata.threshold);
      assertEquals(1.0, m.score, 1e-6);
      assertTrue(m.accepted);
    }
  }

  @Test
  public void tamperedModelIsRefused() throws Exception {
    VerificationBundle bundle = BundleInstaller.install(context());
    File copy = new File(context().getCacheDir(), "tampered_bundle");
    copy.mkdirs();
    FileIo.writeAtomic(
        new File(copy, VerificationBundle.METADATA_FILE),
        FileIo.readAll(new File(bundle.dir, VerificationBundle.METADATA_FILE)));
    File model = new File(copy, bundle.metadata.modelFile);
    FileIo.writeAtomic(model, FileIo.readAll(bundle.modelFile()));
    try (RandomAccessFile raf = new RandomAccessFile(model, "rw")) {
      raf.seek(raf.length() / 2);
      int b = raf.read();
      raf.seek(raf.length() / 2);
      raf.write(b ^ 0x01);
    }
    try {
      VerificationBundle.open(copy);
      fail("a model with a flipped bit was accepted");
    } catch (IOException expected) {
      assertTrue(expected.getMessage(), expected.getMessage().contains("SHA-256"));
    }
  }

  @Test
  public void detectorModelLoadsWithTheExpectedOutputs() throws Exception {
    try (LiteRtModel detector =
        LiteRtModel.fromAsset(context().getAssets(), BundleInstaller.DETECTOR_ASSET, 2)) {
      float[][] out = detector.runFloat(new float[128 * 128 * 3]);
      assertEquals(2, out.length);
      int a = out[0].length;
      int b = out[1].length;
      assertEquals(BlazeFace.NUM_ANCHORS * (BlazeFace.NUM_COORDS + 1), a + b);
    }
  }
}
