// The on-device gallery: the JSON format and matching of pocketnet_tf/gallery.py (and the Android
// core's Gallery.java), with the same arithmetic (float64 products summed in index order, unit
// vectors rounded to float32), persisted in IndexedDB.

export const FORMAT = 'pocketnet_tf.gallery';
export const VERSION = 1;
const MAX_NAME_LENGTH = 100;
const UNIT_NORM_TOLERANCE = 1e-4;
const SHA256 = /^[0-9a-f]{64}$/;

function sequentialDot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

/** float32(v / ||v||) with the norm summed in float64 in index order. */
export function l2Normalize(vector) {
  const v = Float32Array.from(vector);
  const norm = Math.sqrt(sequentialDot(v, v));
  if (!(norm > 0 && Number.isFinite(norm))) throw new Error(`cannot L2-normalise a vector of norm ${norm}`);
  return v.map((x) => x / norm);
}

export function checkName(name) {
  if (typeof name !== 'string' || !name.trim()) throw new Error('identity name must not be empty');
  if (name !== name.trim()) throw new Error(`identity name must not start or end with spaces: ${JSON.stringify(name)}`);
  if (name.length > MAX_NAME_LENGTH) throw new Error(`identity name is longer than ${MAX_NAME_LENGTH} characters`);
  for (const ch of name) {
    const c = ch.codePointAt(0);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) throw new Error(`identity name contains a control character: ${JSON.stringify(name)}`);
  }
  return name;
}

export class Gallery {
  constructor(modelSha256, embeddingSize) {
    if (typeof modelSha256 !== 'string' || !SHA256.test(modelSha256)) throw new Error(`model_sha256 must be 64 lowercase hex digits, got ${JSON.stringify(modelSha256)}`);
    if (!Number.isInteger(embeddingSize) || embeddingSize <= 0) throw new Error(`embedding_size must be a positive integer, got ${embeddingSize}`);
    this.modelSha256 = modelSha256;
    this.embeddingSize = embeddingSize;
    this.identities = new Map();
  }

  get names() { return [...this.identities.keys()]; }

  checkSize(v, what) {
    if (v.length !== this.embeddingSize) throw new Error(`${what} has ${v.length} values, the gallery holds ${this.embeddingSize}`);
    return v;
  }

  enrol(name, embedding) {
    checkName(name);
    const unit = l2Normalize(this.checkSize(embedding, `embedding of ${JSON.stringify(name)}`));
    if (!this.identities.has(name)) this.identities.set(name, []);
    this.identities.get(name).push(unit);
  }

  remove(name) { return this.identities.delete(name); }

  /** {name, score, accepted, threshold, ranking: [{name, score}]} best first, ties in enrolment order. */
  search(embedding, threshold) {
    const q = l2Normalize(this.checkSize(embedding, 'query embedding'));
    const scores = [...this.identities].map(([name, embs]) => ({ name, score: Math.max(...embs.map((e) => sequentialDot(q, e))) }));
    const ranking = scores.map((s, i) => [s, i]).sort((p, r) => r[0].score - p[0].score || p[1] - r[1]).map((p) => p[0]);
    if (!ranking.length) return { name: null, score: null, accepted: false, threshold, ranking };
    return { name: ranking[0].name, score: ranking[0].score, accepted: ranking[0].score >= threshold, threshold, ranking };
  }

  toJSON() {
    return {
      format: FORMAT,
      version: VERSION,
      model_sha256: this.modelSha256,
      embedding_size: this.embeddingSize,
      identities: [...this.identities].map(([name, embs]) => ({ name, embeddings: embs.map((e) => Array.from(e)) })),
    };
  }

  /** Parses gallery JSON (an object), checked as pocketnet_tf.gallery.Gallery.from_json checks it. */
  static fromJSON(obj, source = '<gallery>') {
    const fail = (msg) => { throw new Error(`${source}: ${msg}`); };
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) fail('top-level JSON value must be an object');
    if (obj.format !== FORMAT) fail(`not a gallery file (format ${JSON.stringify(obj.format)}, expected ${JSON.stringify(FORMAT)})`);
    if (obj.version !== VERSION) fail(`gallery version ${JSON.stringify(obj.version)} is not supported (expected ${VERSION})`);
    let gallery;
    try { gallery = new Gallery(obj.model_sha256, obj.embedding_size); } catch (err) { fail(err.message); }
    if (!Array.isArray(obj.identities)) fail("field 'identities' must be an array");
    obj.identities.forEach((ident, i) => {
      if (!ident || typeof ident !== 'object') fail(`field 'identities[${i}]' must be an object`);
      try { checkName(ident.name); } catch (err) { fail(err.message); }
      if (gallery.identities.has(ident.name)) fail(`identity ${JSON.stringify(ident.name)} appears twice`);
      if (!Array.isArray(ident.embeddings) || !ident.embeddings.length) fail(`identity ${JSON.stringify(ident.name)} has no embeddings`);
      gallery.identities.set(ident.name, ident.embeddings.map((row, r) => {
        if (!Array.isArray(row) || row.length !== gallery.embeddingSize || !row.every((x) => typeof x === 'number' && Number.isFinite(x))) {
          fail(`identity ${JSON.stringify(ident.name)} embedding ${r} must be an array of ${gallery.embeddingSize} finite numbers`);
        }
        const v = Float32Array.from(row);
        const norm = Math.sqrt(sequentialDot(v, v));
        if (Math.abs(norm - 1) > UNIT_NORM_TOLERANCE) fail(`identity ${JSON.stringify(ident.name)} embedding ${r} is not unit length (norm ${norm})`);
        return v;
      }));
    });
    return gallery;
  }
}

const DB_NAME = 'pocketnet_tf';
const STORE = 'galleries';

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function transact(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** The gallery stored for a model (keyed by its SHA-256), or an empty one. */
export async function loadStoredGallery(modelSha256, embeddingSize) {
  const obj = await transact('readonly', (store) => store.get(modelSha256));
  return obj ? Gallery.fromJSON(obj, `IndexedDB ${DB_NAME}/${STORE}`) : new Gallery(modelSha256, embeddingSize);
}

export async function storeGallery(gallery) {
  await transact('readwrite', (store) => store.put(gallery.toJSON(), gallery.modelSha256));
}
