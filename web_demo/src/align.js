// Similarity-transform face alignment: the twin of pocketnet_tf/data/align.py and the Android
// core's SimilarityTransform/AffineWarp. Every step is IEEE-754 double arithmetic evaluated left
// to right exactly as that module's docstring specifies, so the crops agree bit for bit.

/** Rounds each coordinate to float32 and back (insightface stores landmarks as float32). */
function points(pts, name) {
  if (!Array.isArray(pts) || pts.length < 2) throw new Error(`${name}: expected n >= 2 (x, y) points`);
  return pts.map((p) => {
    const x = Math.fround(p[0]);
    const y = Math.fround(p[1]);
    if (!Number.isFinite(x) || !Number.isFinite(y)) throw new Error(`${name}: points must be finite`);
    return [x, y];
  });
}

/** Least-squares similarity mapping src onto dst: [[a, -b, tx], [b, a, ty]] (row-major, 6 numbers). */
export function estimateSimilarity(src, dst) {
  const s = points(src, 'source landmarks');
  const d = points(dst, 'template points');
  if (s.length !== d.length) throw new Error(`source landmarks (${s.length}) and template (${d.length}) differ`);
  const n = s.length;
  let mxs = 0, mys = 0, mxd = 0, myd = 0;
  for (let i = 0; i < n; i++) { mxs += s[i][0]; mys += s[i][1]; mxd += d[i][0]; myd += d[i][1]; }
  mxs /= n; mys /= n; mxd /= n; myd /= n;
  let norm = 0, dot = 0, cross = 0;
  for (let i = 0; i < n; i++) {
    const us = s[i][0] - mxs, vs = s[i][1] - mys;
    const ud = d[i][0] - mxd, vd = d[i][1] - myd;
    norm += us * us + vs * vs;
    dot += us * ud + vs * vd;
    cross += us * vd - vs * ud;
  }
  if (!(norm > 0)) throw new Error('source landmarks all coincide; cannot estimate a transform');
  const a = dot / norm;
  const b = cross / norm;
  const tx = mxd - (a * mxs - b * mys);
  const ty = myd - (b * mxs + a * mys);
  return [a, -b, tx, b, a, ty];
}

/** Maps (x, y) points with a 2x3 matrix. */
export function applySimilarity(m, pts) {
  return pts.map(([x, y]) => [(m[0] * x + m[1] * y) + m[2], (m[3] * x + m[4] * y) + m[5]]);
}

/**
 * Warps an RGB image {data: Uint8Array|Uint8ClampedArray (RGB, 3 per pixel), width, height} with
 * the forward similarity m (source -> output) into outH x outW: bilinear, border 0, round half up.
 */
export function warpAffine(image, m, outH, outW) {
  const a = m[0], b = m[3], tx = m[2], ty = m[5];
  if (m[4] !== a || m[1] !== -b) throw new Error('not a similarity matrix');
  const k = a * a + b * b;
  if (!(k > 0)) throw new Error('degenerate similarity matrix (zero scale)');
  const ia = a / k, ib = b / k;
  const itx = -(ia * tx + ib * ty);
  const ity = -(ia * ty - ib * tx);
  const { data, width: w, height: h } = image;
  const out = new Uint8Array(outH * outW * 3);
  const px = (i, j, c) => (i >= 0 && i < w && j >= 0 && j < h ? data[(j * w + i) * 3 + c] : 0);
  for (let v = 0; v < outH; v++) {
    for (let u = 0; u < outW; u++) {
      const x = (ia * u + ib * v) + itx;
      const y = (ia * v - ib * u) + ity;
      const x0 = Math.floor(x), y0 = Math.floor(y);
      const fx = x - x0, fy = y - y0;
      for (let c = 0; c < 3; c++) {
        const top = (1 - fx) * px(x0, y0, c) + fx * px(x0 + 1, y0, c);
        const bottom = (1 - fx) * px(x0, y0 + 1, c) + fx * px(x0 + 1, y0 + 1, c);
        const value = (1 - fy) * top + fy * bottom;
        out[(v * outW + u) * 3 + c] = Math.min(255, Math.max(0, Math.floor(value + 0.5)));
      }
    }
  }
  return out;
}

/** Aligned crop {data, width, height} from 5 landmarks and a 5-point template. */
export function alignFace(image, landmarks, template, size) {
  const m = estimateSimilarity(landmarks, template);
  return { crop: { data: warpAffine(image, m, size[0], size[1]), height: size[0], width: size[1] }, matrix: m };
}
