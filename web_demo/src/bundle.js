// Loading and checking a verification bundle written by `python -m pocketnet_tf.convert`
// (tflite/README.md): metadata.json as pocketnet_tf.face_pipeline.read_bundle_metadata checks it,
// the model's SHA-256, the sealed manifest (metadata.bundle, required), and golden/golden.json.

export const METADATA_SCHEMA = 'pocketnet_tf.tflite_metadata/1';
export const MANIFEST_SCHEMA = 'pocketnet_tf.bundle_manifest/1';
export const GOLDEN_SCHEMA = 'pocketnet_tf.golden/1';
// The fixed per-mode table of pocketnet_tf/export/bundle.py: the tolerance used is this one,
// never the bundle's own golden.json.
export const GOLDEN_TOLERANCES = {
  fp32: { min_cosine: 0.99999, max_abs_error_relative: 1e-4 },
  fp16: { min_cosine: 0.9999, max_abs_error_relative: 1e-3 },
  dynamic: { min_cosine: 0.999, max_abs_error_relative: 1e-2 },
  int8: { min_cosine: 0.995, max_abs_error_relative: 5e-2 },
  int16x8: { min_cosine: 0.999, max_abs_error_relative: 1e-2 },
};
const JSON_LIMIT = 1 << 20;
const MODEL_LIMIT = 256 << 20;
const GOLDEN_FILE_LIMIT = 16 << 20;
const HEX64 = /^[0-9a-f]{64}$/;

export class BundleError extends Error {
  constructor(message) { super(message); this.name = 'BundleError'; }
}

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Bytes of base + path, refused when missing or larger than limit. */
export async function fetchBytes(base, path, limit) {
  const url = new URL(path, base);
  const resp = await fetch(url, { cache: 'no-store' });
  if (!resp.ok) throw new BundleError(`${path}: missing (HTTP ${resp.status})`);
  const declared = Number(resp.headers.get('content-length'));
  if (declared > limit) throw new BundleError(`${path}: ${declared} bytes, more than the ${limit}-byte limit`);
  const bytes = new Uint8Array(await resp.arrayBuffer());
  if (bytes.length > limit) throw new BundleError(`${path}: ${bytes.length} bytes, more than the ${limit}-byte limit`);
  return bytes;
}

function parseJson(bytes, path) {
  let value;
  try { value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)); } catch (err) {
    throw new BundleError(`${path}: not valid JSON (${err.message})`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new BundleError(`${path}: expected a JSON object`);
  return value;
}

const KINDS = {
  str: (v) => typeof v === 'string',
  int: (v) => Number.isInteger(v),
  num: (v) => typeof v === 'number' && Number.isFinite(v),
  bool: (v) => typeof v === 'boolean',
  obj: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
  list: (v) => Array.isArray(v),
};

function field(obj, key, kind, where, { nullable = false } = {}) {
  if (!KINDS.obj(obj) || !(key in obj) || (obj[key] === null && !nullable)) throw new BundleError(`metadata.json: missing field '${where}${key}'`);
  const value = obj[key];
  if (value === null) return null;
  if (!KINDS[kind](value)) throw new BundleError(`metadata.json: field '${where}${key}' has the wrong type`);
  return value;
}

function floatTensor(tensor, where) {
  if (field(tensor, 'dtype', 'str', where) !== 'float32') throw new BundleError(`metadata.json: field '${where}dtype' must be 'float32'`);
  if (field(tensor, 'quantization', 'obj', where, { nullable: true }) !== null) {
    throw new BundleError(`metadata.json: field '${where}quantization' must be null: the page feeds and reads float32 tensors only`);
  }
}

/** The fields the page uses, checked; throws BundleError naming metadata.json and the field. */
export function checkMetadata(meta) {
  if (field(meta, 'schema', 'str', '') !== METADATA_SCHEMA) throw new BundleError(`metadata.json: schema ${JSON.stringify(meta.schema)}, expected ${JSON.stringify(METADATA_SCHEMA)}`);
  const model = field(meta, 'model', 'obj', '');
  const file = field(model, 'file', 'str', 'model.');
  if (!/^[^/\\]+$/.test(file) || file.startsWith('.')) throw new BundleError(`metadata.json: field 'model.file' must be a plain file name, got ${JSON.stringify(file)}`);
  const sha = field(model, 'sha256', 'str', 'model.');
  if (!HEX64.test(sha)) throw new BundleError("metadata.json: field 'model.sha256' must be 64 lowercase hex digits");
  const mode = field(model, 'mode', 'str', 'model.');
  if (!(mode in GOLDEN_TOLERANCES)) throw new BundleError(`metadata.json: unknown model.mode ${JSON.stringify(mode)}`);
  const inp = field(meta, 'input', 'obj', '');
  const shape = field(inp, 'shape', 'list', 'input.');
  if (shape.length !== 4 || shape[0] !== 1 || shape[3] !== 3 || !Number.isInteger(shape[1]) || !Number.isInteger(shape[2]) ||
      shape[1] <= 0 || shape[2] <= 0 || field(inp, 'layout', 'str', 'input.') !== 'NHWC') {
    throw new BundleError(`metadata.json: input must be NHWC [1, H, W, 3] (static batch 1), got ${JSON.stringify(shape)} ${inp.layout}`);
  }
  if (field(inp, 'color', 'str', 'input.') !== 'RGB') throw new BundleError("metadata.json: field 'input.color' must be 'RGB'");
  floatTensor(inp, 'input.');
  const norm = field(inp, 'normalization', 'obj', 'input.');
  const mean = field(norm, 'mean', 'num', 'input.normalization.');
  const std = field(norm, 'std', 'num', 'input.normalization.');
  if (!(std > 0)) throw new BundleError(`metadata.json: field 'input.normalization.std' must be positive, got ${std}`);
  const out = field(meta, 'output', 'obj', '');
  floatTensor(out, 'output.');
  const embeddingSize = field(out, 'embedding_size', 'int', 'output.');
  const outShape = field(out, 'shape', 'list', 'output.');
  if (embeddingSize <= 0 || outShape.length !== 2 || outShape[0] !== 1 || outShape[1] !== embeddingSize) {
    throw new BundleError('metadata.json: output.embedding_size must be positive and match output.shape [1, D]');
  }
  const alignment = field(meta, 'alignment', 'obj', '');
  const template = field(alignment, 'template', 'list', 'alignment.');
  if (template.length !== 5 || !template.every((p) => Array.isArray(p) && p.length === 2 && p.every(KINDS.num))) {
    throw new BundleError("metadata.json: field 'alignment.template' must be 5 (x, y) points");
  }
  const size = field(alignment, 'output_size', 'list', 'alignment.');
  if (size.length !== 2 || size[0] !== shape[1] || size[1] !== shape[2]) throw new BundleError(`metadata.json: alignment.output_size must equal the model input size [${shape[1]}, ${shape[2]}]`);
  const ver = field(meta, 'verification', 'obj', '', { nullable: true });
  let threshold = null;
  if (ver !== null) {
    if (field(ver, 'metric', 'str', 'verification.') !== 'cosine') throw new BundleError("metadata.json: field 'verification.metric' must be 'cosine'");
    threshold = field(ver, 'threshold', 'num', 'verification.');
    if (threshold < -1 || threshold > 1) throw new BundleError(`metadata.json: verification.threshold must be a cosine in [-1, 1], got ${threshold}`);
  }
  return { modelFile: file, modelSha256: sha, mode, inputSize: [shape[1], shape[2]], normalization: { mean, std }, embeddingSize, template, threshold };
}

function checkManifestPath(path) {
  if (typeof path !== 'string' || !path || path.startsWith('/') || path.includes('\\') || path.split('/').some((p) => p === '..' || p === '.' || p === '')) {
    throw new BundleError(`manifest.json: bad path ${JSON.stringify(path)} (relative POSIX paths only, no '..')`);
  }
}

/** The sealed manifest {path -> {bytes, sha256}}, checked against metadata.bundle; every listed file is fetched and hashed. */
export async function checkSeal(base, meta) {
  const seal = meta.bundle;
  if (!KINDS.obj(seal) || seal.manifest !== 'manifest.json' || typeof seal.manifest_sha256 !== 'string' || !HEX64.test(seal.manifest_sha256)) {
    throw new BundleError("metadata.json: field 'bundle' must be {manifest: 'manifest.json', manifest_sha256: <64 hex>}");
  }
  const bytes = await fetchBytes(base, 'manifest.json', JSON_LIMIT);
  const digest = await sha256Hex(bytes);
  if (digest !== seal.manifest_sha256) throw new BundleError(`manifest.json: sha256 ${digest} does not match metadata.json (${seal.manifest_sha256})`);
  const manifest = parseJson(bytes, 'manifest.json');
  if (manifest.schema !== MANIFEST_SCHEMA) throw new BundleError(`manifest.json: schema ${JSON.stringify(manifest.schema)}, expected ${JSON.stringify(MANIFEST_SCHEMA)}`);
  if (!Array.isArray(manifest.files) || !manifest.files.length) throw new BundleError("manifest.json: field 'files' must be a non-empty array");
  const entries = new Map();
  let previous = '';
  for (const f of manifest.files) {
    checkManifestPath(f?.path);
    if (f.path <= previous) throw new BundleError(`manifest.json: paths must be sorted and unique (${JSON.stringify(f.path)})`);
    if (f.path === 'metadata.json' || f.path === 'manifest.json') throw new BundleError(`manifest.json: must not list ${f.path}`);
    if (!Number.isInteger(f.bytes) || f.bytes < 0 || typeof f.sha256 !== 'string' || !HEX64.test(f.sha256)) throw new BundleError(`manifest.json: bad entry for ${f.path}`);
    previous = f.path;
    entries.set(f.path, f);
  }
  for (const [path, f] of entries) {
    const limit = path.endsWith('.json') ? JSON_LIMIT : path === meta.model.file ? MODEL_LIMIT : GOLDEN_FILE_LIMIT;
    const data = await fetchBytes(base, path, limit);
    if (data.length !== f.bytes) throw new BundleError(`${path}: ${data.length} bytes, manifest.json says ${f.bytes}`);
    const hash = await sha256Hex(data);
    if (hash !== f.sha256) throw new BundleError(`${path}: sha256 ${hash} does not match manifest.json (${f.sha256})`);
  }
  return entries;
}

/**
 * Loads and checks the bundle at base (a URL ending in '/'). Returns {meta, spec, modelBytes,
 * golden, sealed}. Throws BundleError with a message naming the file and what is wrong.
 */
export async function loadBundle(base) {
  const meta = parseJson(await fetchBytes(base, 'metadata.json', JSON_LIMIT), 'metadata.json');
  const spec = checkMetadata(meta);
  const modelBytes = await fetchBytes(base, spec.modelFile, MODEL_LIMIT);
  const digest = await sha256Hex(modelBytes);
  if (digest !== spec.modelSha256) {
    throw new BundleError(`${spec.modelFile}: sha256 ${digest} does not match metadata.json (${spec.modelSha256}): corrupt or replaced model`);
  }
  // Every bundle the converter writes is sealed; one without a seal is refused (its golden files
  // could have been changed unnoticed).
  if (!('bundle' in meta)) {
    throw new BundleError("metadata.json: no 'bundle' seal (manifest.json); re-export the bundle with python -m pocketnet_tf.convert");
  }
  const manifest = await checkSeal(base, meta);
  if (!manifest.has(spec.modelFile) || !manifest.has('golden/golden.json')) throw new BundleError(`manifest.json: must list ${spec.modelFile} and golden/golden.json`);
  const golden = parseJson(await fetchBytes(base, 'golden/golden.json', JSON_LIMIT), 'golden/golden.json');
  if (golden.schema !== GOLDEN_SCHEMA) throw new BundleError(`golden/golden.json: schema ${JSON.stringify(golden.schema)}, expected ${JSON.stringify(GOLDEN_SCHEMA)}`);
  if (golden.model_sha256 !== digest) throw new BundleError(`golden/golden.json: golden vectors were made for model ${golden.model_sha256}, the bundle holds ${digest}`);
  if (!Array.isArray(golden.cases) || !golden.cases.length) throw new BundleError('golden/golden.json: no test cases');
  return { meta, spec, modelBytes, golden, tolerance: GOLDEN_TOLERANCES[spec.mode], sealed: true };
}

/** Refuses a compiled model whose input/output do not match the metadata. */
export function checkModelSpec(model, spec) {
  const inputs = model.getInputDetails();
  const outputs = model.getOutputDetails();
  const want = [1, spec.inputSize[0], spec.inputSize[1], 3].join();
  if (inputs.length !== 1 || Array.from(inputs[0].shape).join() !== want || inputs[0].dtype !== 'float32') {
    throw new BundleError(`${spec.modelFile}: input ${inputs.map((d) => `[${Array.from(d.shape)}] ${d.dtype}`)} disagrees with metadata.json ([${want}] float32)`);
  }
  if (outputs.length !== 1 || Array.from(outputs[0].shape).join() !== `1,${spec.embeddingSize}` || outputs[0].dtype !== 'float32') {
    throw new BundleError(`${spec.modelFile}: output ${outputs.map((d) => `[${Array.from(d.shape)}] ${d.dtype}`)} disagrees with metadata.json ([1,${spec.embeddingSize}] float32)`);
  }
}

/** Little-endian float32 file -> Float32Array of count values. */
export function readF32(bytes, count, path) {
  if (bytes.length !== 4 * count) throw new BundleError(`${path}: ${bytes.length} bytes, expected ${4 * count} (${count} float32 values)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true));
}
