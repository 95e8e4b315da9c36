// Latency of several bundle models in this browser's LiteRT.js WASM runtime: each model is
// compiled per thread count and the models are timed round-robin (so that load from other
// processes hits them alike). The result is left in window.latencyResult (set once done) for
// tools/latency.mjs.

import { compile, loadRuntime } from './runtime.js';

const params = new URLSearchParams(location.search);
const names = (params.get('models') ?? 'fp32,fp16,int8').split(',');
const threadCounts = (params.get('threads') ?? '1').split(',').map(Number);
const runs = Number(params.get('runs') ?? 50);
const warmup = Number(params.get('warmup') ?? 5);
const build = params.get('build') ?? 'auto';

async function timeRoundRobin(models, litert) {
  const inputs = models.map((m) => {
    const d = m.getInputDetails()[0];
    const shape = Array.from(d.shape);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 0.9;
    return new litert.Tensor(data, shape);
  });
  const once = async (i) => { const outs = await models[i].run(inputs[i]); await outs[0].data(); for (const t of outs) t.delete(); };
  for (let w = 0; w < warmup; w++) for (let i = 0; i < models.length; i++) await once(i);
  const times = models.map(() => []);
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < models.length; i++) {
      const t0 = performance.now();
      await once(i);
      times[i].push(performance.now() - t0);
    }
  }
  inputs.forEach((t) => t.delete());
  return times.map((t) => { const s = [...t].sort((a, b) => a - b); return { min_ms: s[0], median_ms: s[Math.floor(s.length / 2)] }; });
}

async function main() {
  const wasmUrl = new URL('node_modules/@litertjs/core/wasm/', location.href).href;
  const runtime = await loadRuntime(wasmUrl, { threads: build === 'auto' ? 'auto' : build === 'threaded' });
  const bytes = await Promise.all(names.map(async (n) => new Uint8Array(await (await fetch(`bundle/${n}/model.tflite`)).arrayBuffer())));
  const rows = [];
  for (const threads of threadCounts) {
    const models = [];
    for (const b of bytes) models.push(await compile(b, threads));
    const timing = await timeRoundRobin(models, runtime.litert);
    names.forEach((name, i) => rows.push({ model: name, threads, ...timing[i] }));
    models.forEach((m) => m.delete());
  }
  const table = document.getElementById('table');
  for (const r of rows) {
    const tr = table.insertRow();
    for (const v of [r.model, r.threads, r.min_ms.toFixed(2), r.median_ms.toFixed(2)]) tr.insertCell().textContent = v;
  }
  document.getElementById('status').textContent = `done: ${runtime.threaded ? 'threaded' : 'single-threaded'} WASM build, crossOriginIsolated=${crossOriginIsolated}`;
  return { crossOriginIsolated, threadedBuild: runtime.threaded, defaultThreads: runtime.threads, runs, warmup, userAgent: navigator.userAgent,
    hardwareConcurrency: navigator.hardwareConcurrency, rows };
}

main().catch((err) => { document.getElementById('status').textContent = err.message; return { error: err.message }; })
  .then((result) => { window.latencyResult = result; });
