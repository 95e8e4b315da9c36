// The page: camera or photo -> Demo -> aligned crop, best identity, cosine vs threshold, timings.
// window.demoApi exposes the same actions for the browser tests.

import { BundleError } from './bundle.js';
import { Demo } from './demo.js';
import { decodeImage, drawRgb, grabFrame } from './image.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { demo: null, last: null, error: null, ready: false };

function status(text, kind = 'info') {
  const el = $('status');
  el.textContent = text;
  el.className = kind;
}

function drawFrame(image, result) {
  const canvas = $('frame');
  drawRgb(canvas, image);
  if (!result.face) return;
  const ctx = canvas.getContext('2d');
  const [x0, y0, x1, y1] = result.face.box;
  ctx.strokeStyle = '#0c0';
  ctx.lineWidth = Math.max(2, image.width / 200);
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.fillStyle = '#f0f';
  for (const [x, y] of result.face.keypoints) ctx.fillRect(x - 2, y - 2, 4, 4);
}

function showResult(result) {
  const fmt = (ms) => `${ms.toFixed(1)} ms`;
  $('detect-ms').textContent = fmt(result.detectMs);
  if (!result.face) {
    $('embed-ms').textContent = '-';
    $('identity').textContent = 'no face found';
    $('cosine').textContent = '-';
    $('decision').textContent = '-';
    return null;
  }
  drawRgb($('crop'), result.crop);
  $('embed-ms').textContent = fmt(result.embedMs);
  const match = state.demo.match(result.embedding);
  const threshold = state.demo.spec.threshold;
  $('identity').textContent = match.name ?? '(gallery empty)';
  $('cosine').textContent = match.name === null ? '-' : `${match.score.toFixed(4)} (threshold ${threshold.toFixed(4)})`;
  $('decision').textContent = match.name === null ? '-' : match.accepted ? `match: ${match.name}` : 'no match (unknown person)';
  $('decision').className = match.accepted ? 'accepted' : 'rejected';
  return match;
}

function showGallery() {
  const list = $('gallery');
  list.replaceChildren(...state.demo.gallery.names.map((name) => {
    const li = document.createElement('li');
    li.textContent = `${name} (${state.demo.gallery.identities.get(name).length})`;
    return li;
  }));
}

/** Runs the pipeline on an RGB image and shows everything; returns {result, match}. */
async function analyse(image) {
  const result = await state.demo.process(image);
  state.last = result;
  drawFrame(image, result);
  const match = showResult(result);
  return { faces: result.faces ?? 0, detectMs: result.detectMs, embedMs: result.embedMs ?? null, match,
           crop: result.crop ? Array.from(result.crop.data) : null, keypoints: result.face?.keypoints ?? null };
}

async function startCamera() {
  const video = $('video');
  if (!video.srcObject) {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    await video.play();
  }
  return video;
}

async function captureCamera() {
  const video = await startCamera();
  if (!video.videoWidth) await new Promise((resolve) => video.addEventListener('loadeddata', resolve, { once: true }));
  return analyse(grabFrame(video));
}

async function enrolLast(name) {
  if (!state.last?.face) throw new Error('no face to enrol: capture or pick a photo first');
  await state.demo.enrol(name, state.last.embedding);
  showGallery();
  return state.demo.gallery.names;
}

function download(text, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  a.download = name;
  a.click();
  URL.revokeObjectURL(a.href);
}

function guard(fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      status(err.message, 'error');
      throw err;
    }
  };
}

function wire() {
  $('camera').onclick = guard(captureCamera);
  $('photo').onchange = guard(async () => { const f = $('photo').files[0]; if (f) await analyse(await decodeImage(f)); });
  $('enrol').onclick = guard(() => enrolLast($('name').value));
  $('export').onclick = guard(async () => download(state.demo.exportGallery(), 'gallery.json'));
  $('import').onchange = guard(async () => { const f = $('import').files[0]; if (f) { await state.demo.importGallery(await f.text(), f.name); showGallery(); } });
  $('golden').onclick = guard(async () => {
    const r = await state.demo.goldenCheck();
    status(`golden vectors (${r.mode}): ${r.passed ? 'pass' : 'FAIL'}; min cosine ${Math.min(...r.cases.map((c) => c.cosine)).toFixed(6)}`, r.passed ? 'ok' : 'error');
    return r;
  });
}

function showBundle(demo) {
  const s = demo.spec;
  $('bundle').textContent = `${demo.bundle.meta.model.name} ${s.mode}, ${s.inputSize[0]}x${s.inputSize[1]} -> ${s.embeddingSize}, ` +
    `threshold ${s.threshold ?? 'none'}, sha256 ${s.modelSha256.slice(0, 12)}…${demo.bundle.sealed ? ', sealed' : ''}; ` +
    `LiteRT.js ${demo.runtime.threaded ? `threaded (${demo.runtime.threads} threads)` : 'single-threaded'}`;
}

async function main() {
  wire();
  status('loading LiteRT.js, bundle and detector…');
  try {
    state.demo = await Demo.create({
      bundleUrl: new URL(params.get('bundle') ?? 'bundle/', location.href).href,
      detectorUrl: params.get('detector') ?? 'models/blazeface.tflite',
      wasmUrl: new URL('node_modules/@litertjs/core/wasm/', location.href).href,
      threads: params.has('threads') ? params.get('threads') === '1' : 'auto',
    });
    showBundle(state.demo);
    showGallery();
    state.ready = true;
    status('ready: start the camera or pick a photo', 'ok');
  } catch (err) {
    state.error = { name: err.name, message: err.message, bundle: err instanceof BundleError };
    status(`${err instanceof BundleError ? 'bundle refused: ' : ''}${err.message}`, 'error');
  }
}

window.demoApi = {
  state,
  capture: guard(captureCamera),
  analyseUrl: guard(async (url) => analyse(await decodeImage(await (await fetch(url)).blob()))),
  enrol: guard(enrolLast),
  golden: () => state.demo.goldenCheck(),
  exportGallery: () => state.demo.exportGallery(),
  importGallery: guard(async (text) => { await state.demo.importGallery(text, 'imported gallery'); showGallery(); }),
  modules: { align: () => import('./align.js'), blazeface: () => import('./blazeface.js'), preprocess: () => import('./preprocess.js'), image: () => import('./image.js') },
};
window.demoReady = main();
