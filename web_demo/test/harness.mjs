// Shared set-up of the browser tests: the fixtures folder, `python -m pocketnet_tf.web_demo serve`
// processes and a headless system Chromium (puppeteer-core; nothing is downloaded).

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

export const WEB_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(WEB_ROOT, '..');
export const FIXTURES = process.env.WEB_DEMO_FIXTURES ?? path.join(WEB_ROOT, '.fixtures');
export const PYTHON = process.env.PYTHON ?? 'python';

export function fixture(...parts) {
  const p = path.join(FIXTURES, ...parts);
  if (!existsSync(p)) throw new Error(`${p}: missing; run \`npm test\` (its pretest step writes the fixtures)`);
  return p;
}

export const readJson = (...parts) => JSON.parse(readFileSync(fixture(...parts), 'utf8'));

/** Starts `python -m pocketnet_tf.web_demo serve` on a free port; resolves {url, close}. */
export function serve(bundleDir, extraFlags = []) {
  const env = { ...process.env, PYTHONPATH: [REPO, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) };
  const child = spawn(PYTHON, ['-m', 'pocketnet_tf.web_demo', 'serve', `--bundle=${bundleDir}`, '--port=0', '--quiet', ...extraFlags],
    { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill(); reject(new Error(`server did not start: ${err}`)); }, 60000);
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/(http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], close: () => new Promise((r) => { child.once('exit', r); child.kill('SIGINT'); }) });
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}: ${err}`)); });
  });
}

function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try { return execFileSync('which', [name], { encoding: 'utf8' }).trim(); } catch { /* next */ }
  }
  throw new Error('no chromium on PATH: run tools/setup.sh (apt-get install chromium)');
}

/** Headless system Chromium, optionally with the fake camera playing a .y4m file. */
export async function launch({ camera = null } = {}) {
  const args = ['--headless=new', '--no-first-run', '--disable-gpu', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'];
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  if (camera) args.push(`--use-file-for-fake-video-capture=${camera}`);
  return puppeteer.launch({ executablePath: chromiumPath(), headless: true, args, protocolTimeout: 180000 });
}

/** Opens the demo page and waits until it is ready or has refused its bundle; returns {page, state}. */
export async function openDemo(browser, url, query = '') {
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(`${url}${query}`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.demoReady !== undefined, { timeout: 60000 });
  await page.evaluate(() => window.demoReady);
  const state = await page.evaluate(() => ({ ready: window.demoApi.state.ready, error: window.demoApi.state.error,
    threaded: window.demoApi.state.demo?.runtime.threaded ?? null, isolated: window.crossOriginIsolated }));
  return { page, state, logs };
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css' };

/** A plain static file server (no COOP/COEP headers) for a built site folder: {url, close}. */
export async function staticServer(root) {
  const { createServer } = await import('node:http');
  const { readFile } = await import('node:fs/promises');
  const server = createServer(async (req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '') || 'index.html';
    const file = path.resolve(root, rel);
    if (!file.startsWith(path.resolve(root) + path.sep)) { res.writeHead(404).end(); return; }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

/** `python -m pocketnet_tf.web_demo build --bundle=DIR --out=OUT`. */
export function buildSite(bundleDir, out) {
  const env = { ...process.env, PYTHONPATH: [REPO, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) };
  execFileSync(PYTHON, ['-m', 'pocketnet_tf.web_demo', 'build', `--bundle=${bundleDir}`, `--out=${out}`], { cwd: REPO, env, stdio: 'pipe' });
  return out;
}
