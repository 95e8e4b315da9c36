package org.pocketnet.demo;

import android.Manifest;
import android.content.pm.PackageManager;
import android.graphics.Bitmap;
import android.net.Uri;
import android.os.Bundle;
import android.text.InputType;
import android.util.Log;
import android.view.View;
import android.widget.Button;
import android.widget.EditText;
import android.widget.ImageView;
import android.widget.TextView;
import android.widget.Toast;
import androidx.activity.result.ActivityResultLauncher;
import androidx.activity.result.PickVisualMediaRequest;
import androidx.activity.result.contract.ActivityResultContracts;
import androidx.appcompat.app.AlertDialog;
import androidx.appcompat.app.AppCompatActivity;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.ImageAnalysis;
import androidx.camera.core.ImageProxy;
import androidx.camera.core.Preview;
import androidx.camera.lifecycle.ProcessCameraProvider;
import androidx.camera.view.PreviewView;
import androidx.core.content.ContextCompat;
import com.google.common.util.concurrent.ListenableFuture;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.pocketnet.core.Gallery;
import org.pocketnet.core.RgbImage;

/**
 * One screen: a live camera preview (or a picked photo), the aligned 112×112 crop of the best
 * face, and the gallery match with its score, the bundle's threshold and the inference times.
 *
 * <p>Threading: every model and gallery call runs on {@link #engineExecutor} (one thread), which is
 * also the camera analyzer's executor; the UI thread only posts work there and shows results.
 */
public class MainActivity extends AppCompatActivity {
  private static final String TAG = "PocketNetDemo";

  private final ExecutorService engineExecutor = Executors.newSingleThreadExecutor();
  private FaceEngine engine; // touched only on engineExecutor
  private volatile FaceEngine.Result lastResult; // written on engineExecutor, read on UI
  private volatile boolean analysing = true;

  private PreviewView previewView;
  private ImageView photoView;
  private ImageView cropView;
  private TextView statusView;
  private ProcessCameraProvider cameraProvider;

  private final ActivityResultLauncher<String> cameraPermission =
      registerForActivityResult(
          new ActivityResultContracts.RequestPermission(),
          granted -> {
            if (granted) {
              startCamera();
            } else {
              statusView.setText(R.string.camera_denied);
            }
          });

  private final ActivityResultLauncher<PickVisualMediaRequest> pickPhoto =
      registerForActivityResult(
          new ActivityResultContracts.PickVisualMedia(),
          uri -> {
            if (uri != null) {
              analysePhoto(uri);
            }
          });

  @Override
  protected void onCreate(Bundle savedInstanceState) {
    super.onCreate(savedInstanceState);
    setContentView(R.layout.activity_main);
    previewView = findViewById(R.id.preview);
    photoView = findViewById(R.id.photo);
    cropView = findViewById(R.id.crop);
    statusView = findViewById(R.id.status);
    Button camera = findViewById(R.id.camera);
    Button pick = findViewById(R.id.pick);
    Button enrol = findViewById(R.id.enrol);
    Button gallery = findViewById(R.id.gallery);

    camera.setOnClickListener(v -> requestCamera());
    pick.setOnClickListener(
        v ->
            pickPhoto.launch(
                new PickVisualMediaRequest.Builder()
                    .setMediaType(ActivityResultContracts.PickVisualMedia.ImageOnly.INSTANCE)
                    .build()));
    enrol.setOnClickListener(v -> askNameAndEnrol());
    gallery.setOnClickListener(v -> showGallery());

    engineExecutor.execute(
        () -> {
          try {
            engine = new FaceEngine(getApplicationContext());
            String info =
                String.format(
                    Locale.ROOT,
                    "Model %s… (%s, %d-d), threshold %.4f at FAR %.0e, %d enrolled.\n%s",
                    engine.bundle.metadata.modelSha256.substring(0, 12),
                    engine.bundle.metadata.mode,
                    engine.bundle.metadata.embeddingSize,
                    engine.bundle.metadata.threshold,
                    engine.bundle.metadata.farTarget,
                    engine.gallery().size(),
                    getString(R.string.no_face_yet));
            runOnUiThread(() -> statusView.setText(info));
          } catch (Exception e) {
            Log.e(TAG, "cannot load the bundle", e);
            runOnUiThread(() -> statusView.setText("Cannot load the model bundle:\n" + e.getMessage()));
          }
        });
    requestCamera();
  }

  // ------------------------------------------------------------------------------------- camera

  private void requestCamera() {
    if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA)
        == PackageManager.PERMISSION_GRANTED) {
      startCamera();
    } else {
      cameraPermission.launch(Manifest.permission.CAMERA);
    }
  }

  private void startCamera() {
    analysing = true;
    photoView.setVisibility(View.GONE);
    ListenableFuture<ProcessCameraProvider> future = ProcessCameraProvider.getInstance(this);
    future.addListener(
        () -> {
          try {
            cameraProvider = future.get();
            Preview preview = new Preview.Builder().build();
            preview.setSurfaceProvider(previewView.getSurfaceProvider());
            ImageAnalysis analysis =
                new ImageAnalysis.Builder()
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                    .build();
            analysis.setAnalyzer(engineExecutor, this::analyseFrame);
            CameraSelector selector =
                cameraProvider.hasCamera(CameraSelector.DEFAULT_FRONT_CAMERA)
                    ? CameraSelector.DEFAULT_FRONT_CAMERA
                    : CameraSelector.DEFAULT_BACK_CAMERA;
            cameraProvider.unbindAll();
            cameraProvider.bindToLifecycle(this, selector, preview, analysis);
          } catch (Exception e) {
            Log.e(TAG, "camera start failed", e);
            statusView.setText("Camera unavailable: " + e.getMessage());
          }
        },
        ContextCompat.getMainExecutor(this));
  }

  /** Runs on engineExecutor for every camera frame it keeps. */
  private void analyseFrame(ImageProxy frame) {
    try {
      if (engine == null || !analysing) {
        return;
      }
      Bitmap bitmap = Bitmaps.rotate(frame.toBitmap(), frame.getImageInfo().getRotationDegrees());
      show(engine.process(Bitmaps.toRgb(bitmap)));
    } catch (Exception e) {
      Log.e(TAG, "frame analysis failed", e);
    } finally {
      frame.close();
    }
  }

  // -------------------------------------------------------------------------------------- photo

  private void analysePhoto(Uri uri) {
    analysing = false; // freeze on the photo until the camera button is pressed
    if (cameraProvider != null) {
      cameraProvider.unbindAll();
    }
    engineExecutor.execute(
        () -> {
          try {
            Bitmap bitmap = Bitmaps.decodePhoto(getContentResolver(), uri);
            runOnUiThread(
                () -> {
                  photoView.setImageBitmap(bitmap);
                  photoView.setVisibility(View.VISIBLE);
                });
            if (engine != null) {
              show(engine.process(Bitmaps.toRgb(bitmap)));
            }
          } catch (Exception e) {
            Log.e(TAG, "photo analysis failed", e);
            runOnUiThread(() -> statusView.setText("Cannot read the photo: " + e.getMessage()));
          }
        });
  }

  // ----------------------------------------------------------------------------------- results

  private void show(FaceEngine.Result r) {
    lastResult = r;
    String text = describe(r);
    Bitmap crop = r.crop != null ? Bitmaps.toBitmap(r.crop) : null;
    runOnUiThread(
        () -> {
          statusView.setText(text);
          cropView.setImageBitmap(crop);
        });
  }

  private String describe(FaceEngine.Result r) {
    if (r.face == null) {
      return String.format(Locale.ROOT, "No face (detection %d ms).", r.detectMillis);
    }
    StringBuilder sb = new StringBuilder();
    Gallery.Match m = r.match;
    if (m == null || m.name == null) {
      sb.append("Face found; the gallery is empty — press Enrol.");
    } else if (m.accepted) {
      sb.append(String.format(Locale.ROOT, "MATCH: %s\nscore %.4f ≥ threshold %.4f", m.name, m.score, m.threshold));
    } else {
      sb.append(
          String.format(
              Locale.ROOT,
              "Unknown (closest: %s)\nscore %.4f < threshold %.4f",
              m.name,
              m.score,
              m.threshold));
    }
    sb.append(
        String.format(
            Locale.ROOT,
            "\nface %.2f · detect %d ms · embed %d ms",
            r.face.score,
            r.detectMillis,
            r.embedMillis));
    return sb.toString();
  }

  // ---------------------------------------------------------------------------------- gallery

  private void askNameAndEnrol() {
    FaceEngine.Result r = lastResult;
    if (r == null || r.embedding == null) {
      Toast.makeText(this, R.string.no_face_to_enrol, Toast.LENGTH_SHORT).show();
      return;
    }
    float[] embedding = r.embedding.clone();
    EditText input = new EditText(this);
    input.setInputType(InputType.TYPE_CLASS_TEXT | InputType.TYPE_TEXT_FLAG_CAP_WORDS);
    input.setHint(R.string.enrol_hint);
    new AlertDialog.Builder(this)
        .setTitle(R.string.enrol_title)
        .setView(input)
        .setPositiveButton(
            R.string.ok,
            (d, w) -> {
              String name = input.getText().toString().trim();
              engineExecutor.execute(
                  () -> {
                    String message;
                    try {
                      engine.enrol(name, embedding);
                      message = "Enrolled " + name + " (" + engine.gallery().embeddingsOf(name).size() + " photos)";
                    } catch (Exception e) {
                      message = "Not enrolled: " + e.getMessage();
                    }
                    String shown = message;
                    runOnUiThread(() -> Toast.makeText(this, shown, Toast.LENGTH_LONG).show());
                  });
            })
        .setNegativeButton(R.string.cancel, null)
        .show();
  }

  private void showGallery() {
    engineExecutor.execute(
        () -> {
          if (engine == null) {
            return;
          }
          List<String> names = engine.gallery().names();
          String[] items = new String[names.size()];
          for (int i = 0; i < items.length; i++) {
            items[i] = names.get(i) + " (" + engine.gallery().embeddingsOf(names.get(i)).size() + ")";
          }
          runOnUiThread(
              () -> {
                AlertDialog.Builder b = new AlertDialog.Builder(this).setTitle(R.string.gallery);
                if (items.length == 0) {
                  b.setMessage(R.string.gallery_empty);
                } else {
                  b.setItems(items, (d, which) -> confirmDelete(names.get(which)));
                }
                b.setNegativeButton(R.string.close, null).show();
              });
        });
  }

  private void confirmDelete(String name) {
    new AlertDialog.Builder(this)
        .setTitle(getString(R.string.delete) + " " + name + "?")
        .setPositiveButton(
            R.string.delete,
            (d, w) ->
                engineExecutor.execute(
                    () -> {
                      try {
                        engine.remove(name);
                      } catch (Exception e) {
                        Log.e(TAG, "delete failed", e);
                      }
                    }))
        .setNegativeButton(R.string.cancel, null)
        .show();
  }

  @Override
  protected void onDestroy() {
    super.onDestroy();
    analysing = false;
    engineExecutor.execute(
        () -> {
          if (engine != null) {
            engine.close();
            engine = null;
          }
        });
    engineExecutor.shutdown();
  }
}
