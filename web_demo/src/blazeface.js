// BlazeFace short-range: input letterbox, anchors, decoding, weighted NMS and keypoint alignment,
// step for step the twin of pocketnet_tf/data/detect.py (and the Android core's BlazeFace.java).

import { estimateSimilarity, warpAffine } from './align.js';

export const INPUT_SIZE = 128;
export const NUM_ANCHORS = 896;
const NUM_COORDS = 16;
const NUM_KEYPOINTS = 6;
export const DEFAULT_MIN_SCORE = 0.5;
export const DEFAULT_IOU_THRESHOLD = 0.3;
const SCORE_CLIP = 100;

/** Anchor centres [[x, y], ...] (896) in the unit square, in the model's output order. */
export function anchors() {
  const strides = [8, 16, 16, 16];
  const out = [];
  let layer = 0;
  while (layer < strides.length) {
    let last = layer;
    while (last < strides.length && strides[last] === strides[layer]) last++;
    const perCell = 2 * (last - layer);
    const fm = Math.ceil(INPUT_SIZE / strides[layer]);
    for (let y = 0; y < fm; y++) {
      for (let x = 0; x < fm; x++) {
        for (let k = 0; k < perCell; k++) out.push([(x + 0.5) / fm, (y + 0.5) / fm]);
      }
    }
    layer = last;
  }
  return out;
}

const ANCHORS = anchors();

/** Raw outputs (Float32Array 896*16 and 896) -> detections in the unit square, anchor order. */
export function decode(regressors, classificators, minScore = DEFAULT_MIN_SCORE) {
  if (regressors.length !== NUM_ANCHORS * NUM_COORDS || classificators.length !== NUM_ANCHORS) {
    throw new Error(`BlazeFace outputs must hold ${NUM_ANCHORS * NUM_COORDS} and ${NUM_ANCHORS} values, ` +
      `got ${regressors.length} and ${classificators.length}`);
  }
  const out = [];
  for (let i = 0; i < NUM_ANCHORS; i++) {
    const logit = Math.max(-SCORE_CLIP, Math.min(SCORE_CLIP, classificators[i]));
    const score = 1 / (1 + Math.exp(-logit));
    if (!(score >= minScore)) continue;
    const [ax, ay] = ANCHORS[i];
    const r = regressors.subarray(i * NUM_COORDS, (i + 1) * NUM_COORDS);
    const cx = r[0] / INPUT_SIZE + ax, cy = r[1] / INPUT_SIZE + ay;
    const w = r[2] / INPUT_SIZE, h = r[3] / INPUT_SIZE;
    const keypoints = [];
    for (let k = 0; k < NUM_KEYPOINTS; k++) keypoints.push([r[4 + 2 * k] / INPUT_SIZE + ax, r[5 + 2 * k] / INPUT_SIZE + ay]);
    out.push({ score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], keypoints });
  }
  return out;
}

const area = (b) => Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);

function iou(a, b) {
  const ix = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const iy = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (ix <= 0 || iy <= 0) return 0;
  const inter = ix * iy;
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

/** MediaPipe's weighted NMS, best first (stable sort by score). */
export function weightedNms(detections, iouThreshold = DEFAULT_IOU_THRESHOLD) {
  let remaining = detections.map((d, i) => [d, i]).sort((p, q) => q[0].score - p[0].score || p[1] - q[1]).map((p) => p[0]);
  const out = [];
  while (remaining.length) {
    const top = remaining[0];
    const cluster = [], rest = [];
    for (const d of remaining) (d === top || iou(top.box, d.box) > iouThreshold ? cluster : rest).push(d);
    let total = 0;
    const box = [0, 0, 0, 0];
    const kps = Array.from({ length: NUM_KEYPOINTS }, () => [0, 0]);
    for (const d of cluster) {
      const s = d.score;
      total += s;
      for (let j = 0; j < 4; j++) box[j] += s * d.box[j];
      for (let k = 0; k < NUM_KEYPOINTS; k++) { kps[k][0] += s * d.keypoints[k][0]; kps[k][1] += s * d.keypoints[k][1]; }
    }
    out.push({ score: top.score, box: box.map((v) => v / total), keypoints: kps.map(([x, y]) => [x / total, y / total]) });
    remaining = rest;
  }
  return out;
}

/** Image -> model input map: integer block reduction, then u = scale*x + tx, v = scale*y + ty. */
export function inputTransform(width, height) {
  const reduction = Math.max(1, Math.min(Math.floor(Math.max(width, height) / INPUT_SIZE), Math.min(width, height)));
  const rw = Math.floor(width / reduction), rh = Math.floor(height / reduction);
  const s = INPUT_SIZE / Math.max(rw, rh);
  const ox = (INPUT_SIZE - s * rw) / 2;
  const oy = (INPUT_SIZE - s * rh) / 2;
  return { reduction, scale: s, tx: s * 0.5 + ox - 0.5, ty: s * 0.5 + oy - 0.5 };
}

function toImage(t, nx, ny) {
  const u = nx * INPUT_SIZE - 0.5, v = ny * INPUT_SIZE - 0.5;
  const xr = (u - t.tx) / t.scale, yr = (v - t.ty) / t.scale;
  const k = t.reduction;
  return [k * xr + (k - 1) / 2, k * yr + (k - 1) / 2];
}

/** A unit-square detection back to original-image pixels. */
export function detectionToImage(t, d) {
  const [x0, y0] = toImage(t, d.box[0], d.box[1]);
  const [x1, y1] = toImage(t, d.box[2], d.box[3]);
  return { score: d.score, box: [x0, y0, x1, y1], keypoints: d.keypoints.map(([x, y]) => toImage(t, x, y)) };
}

/** Mean of k x k blocks of an RGB image, rounded half up; partial blocks dropped. */
export function reduceImage(image, k) {
  if (k === 1) return image;
  const rw = Math.floor(image.width / k), rh = Math.floor(image.height / k);
  const out = new Uint8Array(rw * rh * 3);
  const area = k * k;
  for (let j = 0; j < rh; j++) {
    for (let i = 0; i < rw; i++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let dy = 0; dy < k; dy++) {
          for (let dx = 0; dx < k; dx++) sum += image.data[((j * k + dy) * image.width + i * k + dx) * 3 + c];
        }
        out[(j * rw + i) * 3 + c] = Math.floor((2 * sum + area) / (2 * area));
      }
    }
  }
  return { data: out, width: rw, height: rh };
}

/** The (1, 128, 128, 3) float32 detector input (x / 127.5 - 1) of an RGB image. */
export function prepareInput(image, t) {
  const m = [t.scale, -0, t.tx, 0, t.scale, t.ty];
  const box = warpAffine(reduceImage(image, t.reduction), m, INPUT_SIZE, INPUT_SIZE);
  const s = Math.fround(127.5);
  const out = new Float32Array(box.length);
  for (let i = 0; i < box.length; i++) out[i] = Math.fround(Math.fround(box[i] / s) - 1);
  return out;
}

/** Destination points of BlazeFace's eyes, nose tip and mouth centre from a 5-point template. */
export function blazefaceTemplate(template) {
  if (!Array.isArray(template) || template.length !== 5) throw new Error('the alignment template needs 5 points');
  const t = template.map(([x, y]) => [Math.fround(x), Math.fround(y)]);
  return [t[0], t[1], t[2], [(t[3][0] + t[4][0]) / 2, (t[3][1] + t[4][1]) / 2]];
}

/** Aligned crop and 2x3 matrix from BlazeFace keypoints (6 points). */
export function alignFromKeypoints(image, keypoints, template, size) {
  const m = estimateSimilarity(keypoints.slice(0, 4), blazefaceTemplate(template));
  return { crop: { data: warpAffine(image, m, size[0], size[1]), height: size[0], width: size[1] }, matrix: m };
}

/** The short-range detector on LiteRT.js. */
export class BlazeFace {
  constructor(model, litert, { minScore = DEFAULT_MIN_SCORE, iouThreshold = DEFAULT_IOU_THRESHOLD } = {}) {
    const inputs = model.getInputDetails();
    const names = model.getOutputDetails().map((d) => d.name);
    if (inputs.length !== 1 || Array.from(inputs[0].shape).join() !== '1,128,128,3' ||
        !names.includes('regressors') || !names.includes('classificators')) {
      throw new Error(`not the BlazeFace short-range model (input ${inputs.map((d) => Array.from(d.shape))}, outputs ${names})`);
    }
    this.model = model;
    this.litert = litert;
    this.outputNames = names;
    this.minScore = minScore;
    this.iouThreshold = iouThreshold;
  }

  /** Raw outputs for a prepared input: {regressors: Float32Array(896*16), classificators: Float32Array(896)}. */
  async raw(input) {
    const tensor = new this.litert.Tensor(input, [1, INPUT_SIZE, INPUT_SIZE, 3]);
    const outs = await this.model.run(tensor);
    tensor.delete();
    const result = {};
    for (let i = 0; i < outs.length; i++) {
      result[this.outputNames[i]] = new Float32Array(await outs[i].data());
      outs[i].delete();
    }
    return result;
  }

  /** Faces in an RGB image, best first, in image pixels. */
  async detect(image) {
    const t = inputTransform(image.width, image.height);
    const { regressors, classificators } = await this.raw(prepareInput(image, t));
    return weightedNms(decode(regressors, classificators, this.minScore), this.iouThreshold).map((d) => detectionToImage(t, d));
  }
}
