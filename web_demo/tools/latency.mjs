// `npm run latency [-- --dir=DIR --runs=N]`: fp32 vs fp16 vs int8 PocketNetS-128 bundles (made by
// tools/latency_bundles.py with the real converter) timed in headless Chromium's LiteRT.js WASM
// runtime -- without cross-origin isolation (what loadLiteRt picks then) and isolated (threaded
// build, 1 and 2 threads) -- and, for reference, natively with ai_edge_litert in the same run.
// Prints a markdown table with the machine's load, date and CPU.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, PYTHON, REPO, serve, WEB_ROOT } from '../test/harness.mjs';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const dir = path.resolve(args.dir ?? path.join(WEB_ROOT, '.latency'));
const runs = Number(args.runs ?? 50);
const MODELS = ['fp32', 'fp16', 'int8'];
const pyEnv = { ...process.env, PYTHONPATH: REPO };

function python(code, ...argv) {
  return execFileSync(PYTHON, ['-c', code, ...argv], { cwd: REPO, env: pyEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

/** One page load (one runtime, one thread count); null when it does not finish in 150 s. */
async function inBrowser(server, query, models = MODELS) {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}latency.html?models=${models.join(',')}&runs=${runs}&${query}`);
    await page.waitForFunction(() => window.latencyResult !== undefined, { timeout: 150000, polling: 1000 });
    const result = await page.evaluate(() => window.latencyResult);
    if (result.error) throw new Error(result.error);
    return result;
  } catch (err) {
    console.error(`${query}: ${err.message.split('\n')[0]}`);
    return null;
  } finally {
    await browser.close();
  }
}

const NATIVE = `
import json, sys
from pocketnet_tf.export.speed import cpu_features, round_robin_latency
paths = [f"{sys.argv[1]}/{m}/model.tflite" for m in sys.argv[2].split(",")]
out = {str(t): round_robin_latency(paths, num_threads=t, runs=int(sys.argv[3]), warmup=5) for t in (1, 2)}
print(json.dumps({"native": out, "cpu": cpu_features()}))
`;

async function main() {
  if (!MODELS.every((m) => existsSync(path.join(dir, m, 'model.tflite')))) {
    console.error(`building the PocketNetS-128 bundles into ${dir} ...`);
    execFileSync(PYTHON, [path.join(WEB_ROOT, 'tools', 'latency_bundles.py'), dir], { cwd: REPO, env: pyEnv, stdio: 'inherit' });
  }
  const start = new Date().toISOString();
  const loadBefore = os.loadavg();
  const plain = await serve(dir, ['--nocheck_bundle', '--noisolation']);
  const isolated = await serve(dir, ['--nocheck_bundle']);
  let single, threaded1, threaded2;
  try {
    single = await inBrowser(plain, 'build=auto&threads=1');
    threaded1 = await inBrowser(isolated, 'build=auto&threads=1');
    // Several models compiled with 2 threads each in one page never finished here (the threaded
    // build's worker pool is sized for one); so one page per model for this column.
    const perModel = [];
    for (const m of MODELS) perModel.push(await inBrowser(isolated, 'build=auto&threads=2', [m]));
    threaded2 = perModel.every(Boolean) ? { ...perModel[0], rows: perModel.flatMap((r) => r.rows) } : null;
  } finally {
    await plain.close();
    await isolated.close();
  }
  const { native, cpu } = JSON.parse(python(NATIVE, dir, MODELS.join(','), String(runs)));
  const loadAfter = os.loadavg();
  const cell = (result, model) => result?.rows.find((r) => r.model === model);
  const fmt = (t, ref) => (t ? `${t.min_ms.toFixed(2)} / ${t.median_ms.toFixed(2)} (${(t.min_ms / ref.min_ms).toFixed(2)}x)` : 'did not finish');
  const build = (r) => (r ? (r.threadedBuild ? 'threaded' : 'single-threaded') : '?');
  const columns = [
    ['native LiteRT 1 thread', (m) => native['1'][MODELS.indexOf(m)]],
    ['native LiteRT 2 threads', (m) => native['2'][MODELS.indexOf(m)]],
    [`WASM, not isolated (${build(single)} build), 1 thread`, (m) => cell(single, m)],
    [`WASM, isolated (${build(threaded1)} build), 1 thread`, (m) => cell(threaded1, m)],
    [`WASM, isolated (${build(threaded2)} build), 2 threads, one model per page`, (m) => cell(threaded2, m)],
  ];
  const threaded = threaded1 ?? threaded2 ?? {};
  const lines = [
    `PocketNetS-128 (112x112, random weights), min / median ms of ${runs} round-robin runs (ratio to fp32, min)`,
    `date ${start}; load average before ${loadBefore.map((v) => v.toFixed(2)).join(' ')}, after ${loadAfter.map((v) => v.toFixed(2)).join(' ')}`,
    `CPU: ${cpu.model}, ${cpu.logical_cpus} logical CPUs; ${Object.entries(cpu.features).filter(([, v]) => v).map(([k]) => k).join(', ')}`,
    `browser: ${single?.userAgent}; crossOriginIsolated without headers ${single?.crossOriginIsolated} -> loadLiteRt picked the ` +
      `${build(single)} build; with COOP/COEP ${threaded.crossOriginIsolated} -> ` +
      `${build(threaded1 ?? threaded2)} build (default ${threaded.defaultThreads} threads)`,
    '',
    `| model | ${columns.map(([c]) => c).join(' | ')} |`,
    `|---|${columns.map(() => '---').join('|')}|`,
    ...MODELS.map((m) => `| ${m} | ${columns.map(([, get]) => fmt(get(m), get('fp32'))).join(' | ')} |`),
  ];
  console.log(lines.join('\n'));
}

main().catch((err) => { console.error(err); process.exit(1); });
