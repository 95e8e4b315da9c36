// Model input from an aligned RGB crop, exactly as pocketnet_tf.export.bundle.model_input: float32
// (pixel - mean) / std per the bundle metadata, with the package's default x / 127.5 - 1 form
// (numpy float32 arithmetic; every JS step is rounded to float32 with Math.fround).

const DEFAULT_MEAN = 127.5;
const DEFAULT_STD = 127.5;

/** Float32Array NHWC tensor data for an RGB uint8 crop and metadata.input.normalization. */
export function modelInput(rgb, normalization) {
  const mean = Number(normalization.mean);
  const std = Number(normalization.std);
  const out = new Float32Array(rgb.length);
  if (mean === DEFAULT_MEAN && std === DEFAULT_STD) {
    const s = Math.fround(DEFAULT_STD);
    const offset = Math.fround(DEFAULT_MEAN / DEFAULT_STD);
    for (let i = 0; i < rgb.length; i++) out[i] = Math.fround(Math.fround(rgb[i] / s) - offset);
  } else {
    const m = Math.fround(mean), s = Math.fround(std);
    for (let i = 0; i < rgb.length; i++) out[i] = Math.fround(Math.fround(rgb[i] - m) / s);
  }
  return out;
}
