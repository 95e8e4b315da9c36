// LiteRT.js set-up: one WASM runtime per page. The threaded build needs cross-origin isolation
// (COOP/COEP headers, served by `python -m pocketnet_tf.web_demo serve`); without it the plain
// single-threaded build is loaded.

import * as litert from '@litertjs/core';

let loading = null;

/** Loads the runtime once: {litert, threaded, threads} (threads = the runtime's default thread count). */
export function loadRuntime(wasmBase, { threads = 'auto' } = {}) {
  if (!loading) {
    loading = (async () => {
      const canThread = globalThis.crossOriginIsolated === true && (await litert.supportsFeature('threads')) && (await litert.supportsFeature('relaxedSimd'));
      const threaded = threads === 'auto' ? canThread : Boolean(threads);
      const rt = await litert.loadLiteRt(wasmBase, threaded ? { threads: true } : {});
      return { litert, threaded, threads: rt.liteRtWasm?.getThreadCount ? rt.liteRtWasm.getThreadCount() : 1 };
    })();
  }
  return loading;
}

/** Compiles .tflite bytes for the WASM (XNNPACK) CPU backend. */
export async function compile(bytes, numThreads) {
  const options = { accelerator: 'wasm' };
  if (numThreads) options.cpuOptions = { numThreads };
  return litert.loadAndCompile(bytes, options);
}

/** Runs a one-input one-output float32 model: Float32Array in, Float32Array out. */
export async function runOnce(model, data, shape) {
  const tensor = new litert.Tensor(data, shape);
  try {
    const outs = await model.run(tensor);
    const result = new Float32Array(await outs[0].data());
    for (const t of outs) t.delete();
    return result;
  } finally {
    tensor.delete();
  }
}
