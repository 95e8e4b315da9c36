package org.pocketnet.demo;

import static org.junit.Assert.assertEquals;
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
import org.pocketnet.core.GoldenSet;
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
    GoldenSet golden = bundle.golden();
    try (LiteRtModel model = LiteRtModel.fromFile(bundle.modelFile(), 2)) {
      GoldenCheck.Report report = GoldenCheck.run(bundle, golden, model::runEmbedding);
      android.util.Log.i("BundleGoldenTest", report.toString());
      assertTrue(report.toString(), report.images > 0);
      assertEquals(report.toString(), 0, report.inputValuesNotBitExact);
      assertTrue(report.toString(), report.passed());
    }
  }

  @Test
  public void goldenEmbeddingsMatchThemselvesInTheGallery() throws Exception {
    VerificationBundle bundle = BundleInstaller.install(context());
    GoldenSet golden = bundle.golden();
    Gallery g = new Gallery(bundle.metadata.modelSha256, bundle.metadata.embeddingSize);
    for (int i = 0; i < golden.cases.size(); i++) {
      g.enrol("golden" + i, golden.cases.get(i).embedding);
    }
    File file = new File(context().getCacheDir(), "golden_gallery.json");
    g.save(file);
    Gallery back = Gallery.load(file, bundle.metadata.modelSha256);
    for (GoldenSet.Case c : golden.cases) {
      Gallery.Match m = back.search(c.embedding, bundle.metadata.threshold);
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
