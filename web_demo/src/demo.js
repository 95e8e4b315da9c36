// The demo's logic without the DOM: bundle + detector + gallery, as the desktop twin
// (pocketnet_tf/face_pipeline.py) and the Android app run them.

import { alignFromKeypoints, BlazeFace } from './blazeface.js';
import { BundleError, checkModelSpec, fetchBytes, loadBundle, readF32, sha256Hex } from './bundle.js';
import { Gallery, loadStoredGallery, storeGallery } from './gallery.js';
import { decodeImage } from './image.js';
import { modelInput } from './preprocess.js';
import { compile, loadRuntime, runOnce } from './runtime.js';

const DETECTOR_LIMIT = 16 << 20;

export class Demo {
  /** Loads runtime, bundle (checked), detector and the stored gallery. Throws BundleError on a bad bundle. */
  static async create({ bundleUrl, detectorUrl, wasmUrl, threads = 'auto' }) {
    const runtime = await loadRuntime(wasmUrl, { threads });
    const bundle = await loadBundle(bundleUrl);
    const model = await compile(bundle.modelBytes);
    checkModelSpec(model, bundle.spec);
    const detectorBytes = await fetchBytes(document.baseURI, detectorUrl, DETECTOR_LIMIT);
    const detector = new BlazeFace(await compile(detectorBytes), runtime.litert);
    const gallery = await loadStoredGallery(bundle.spec.modelSha256, bundle.spec.embeddingSize);
    return new Demo(runtime, bundle, model, detector, gallery, { bundleUrl, detectorSha256: await sha256Hex(detectorBytes) });
  }

  constructor(runtime, bundle, model, detector, gallery, info) {
    Object.assign(this, { runtime, bundle, model, detector, gallery, info });
    this.spec = bundle.spec;
  }

  /** Model input (Float32Array) of an aligned crop, as the metadata says. */
  input(crop) { return modelInput(crop.data, this.spec.normalization); }

  async embed(crop) {
    const [h, w] = this.spec.inputSize;
    return runOnce(this.model, this.input(crop), [1, h, w, 3]);
  }

  /** Detect -> align -> embed the best face of an RGB image; null when no face is found. */
  async process(image) {
    const t0 = performance.now();
    const faces = await this.detector.detect(image);
    const t1 = performance.now();
    if (!faces.length) return { face: null, detectMs: t1 - t0 };
    const { crop, matrix } = alignFromKeypoints(image, faces[0].keypoints, this.spec.template, this.spec.inputSize);
    const t2 = performance.now();
    const embedding = await this.embed(crop);
    const t3 = performance.now();
    return { face: faces[0], faces: faces.length, crop, matrix, embedding, detectMs: t1 - t0, alignMs: t2 - t1, embedMs: t3 - t2 };
  }

  match(embedding) {
    if (this.spec.threshold === null) throw new BundleError("metadata.json: 'verification' is null, so the bundle states no decision threshold; export it with --bin");
    return this.gallery.search(embedding, this.spec.threshold);
  }

  async enrol(name, embedding) {
    this.gallery.enrol(name, embedding);
    await storeGallery(this.gallery);
  }

  async removeIdentity(name) {
    this.gallery.remove(name);
    await storeGallery(this.gallery);
  }

  exportGallery() { return JSON.stringify(this.gallery.toJSON(), null, 2) + '\n'; }

  /** Replaces the gallery with a gallery JSON text made for this model. */
  async importGallery(text, source = 'gallery file') {
    let obj;
    try { obj = JSON.parse(text); } catch (err) { throw new Error(`${source}: invalid JSON (${err.message})`); }
    const g = Gallery.fromJSON(obj, source);
    if (g.modelSha256 !== this.spec.modelSha256) {
      throw new Error(`${source}: gallery was enrolled with model ${g.modelSha256}, the loaded model is ${this.spec.modelSha256} (re-enrol with this model)`);
    }
    this.gallery = g;
    await storeGallery(g);
  }

  /** Re-runs the bundle's golden vectors: image -> input (exact) -> embedding (per-mode tolerance). */
  async goldenCheck() {
    const base = new URL('golden/', this.info.bundleUrl);
    const { golden, tolerance } = this.bundle;
    const [h, w] = this.spec.inputSize;
    const cases = [];
    for (const c of golden.cases) {
      const png = await fetchBytes(base, c.image, 16 << 20);
      const pixels = await decodeImage(new Blob([png], { type: 'image/png' }));
      if (pixels.width !== w || pixels.height !== h) throw new BundleError(`golden/${c.image}: ${pixels.width}x${pixels.height}, expected ${w}x${h}`);
      const x = this.input(pixels);
      const stored = readF32(await fetchBytes(base, c.input, 16 << 20), h * w * 3, `golden/${c.input}`);
      let inputDiff = 0;
      for (let i = 0; i < x.length; i++) inputDiff = Math.max(inputDiff, Math.abs(x[i] - stored[i]));
      const expected = readF32(await fetchBytes(base, c.embedding, 16 << 20), this.spec.embeddingSize, `golden/${c.embedding}`);
      const got = await runOnce(this.model, stored, [1, h, w, 3]);
      cases.push({ case: c.image, inputMaxAbsDiff: inputDiff, ...compareEmbeddings(got, expected, tolerance) });
    }
    return { mode: this.spec.mode, tolerance, passed: cases.every((c) => c.passed && c.inputMaxAbsDiff === 0), cases };
  }
}

/** Cosine and max |d| of two embeddings against a {min_cosine, max_abs_error_relative} tolerance. */
export function compareEmbeddings(got, expected, tolerance) {
  let dot = 0, ng = 0, ne = 0, maxAbs = 0, maxRef = 0;
  for (let i = 0; i < got.length; i++) {
    dot += got[i] * expected[i]; ng += got[i] * got[i]; ne += expected[i] * expected[i];
    maxAbs = Math.max(maxAbs, Math.abs(got[i] - expected[i]));
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  const cosine = dot / Math.max(Math.sqrt(ng) * Math.sqrt(ne), 1e-30);
  const limit = tolerance.max_abs_error_relative * maxRef;
  return { cosine, maxAbsError: maxAbs, maxAbsLimit: limit, passed: cosine >= tolerance.min_cosine && maxAbs <= limit };
}
