// The browser demo in headless Chromium against bundles made by the real converter (fixtures.py).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildSite, FIXTURES, fixture, launch, openDemo, readJson, serve, staticServer, WEB_ROOT } from './harness.mjs';

const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');
const servers = {};
let browser;

before(async () => {
  [servers.fp32, servers.int8, servers.tampered] = await Promise.all([
    serve(fixture('bundle_fp32')), serve(fixture('bundle_int8')),
    serve(fixture('bundle_tampered'), ['--nocheck_bundle']),
  ]);
  browser = await launch({ camera: fixture(readJson('camera.json').alice.file) });
});

after(async () => {
  await browser?.close();
  await Promise.all(Object.values(servers).map((s) => s.close()));
});

describe('golden vectors', () => {
  for (const mode of ['fp32', 'int8']) {
    test(`${mode}: the browser reproduces the bundle's golden inputs and embeddings`, async () => {
      const { page, state } = await openDemo(browser, servers[mode].url);
      assert.equal(state.error, null, JSON.stringify(state.error));
      // serve sends COOP/COEP: the page is isolated and loads LiteRT.js's threaded build.
      assert.equal(state.isolated, true);
      assert.equal(state.threaded, true);
      const r = await page.evaluate(() => window.demoApi.golden());
      const meta = JSON.parse(readFileSync(fixture(`bundle_${mode}`, 'metadata.json')));
      assert.equal(r.mode, mode);
      assert.equal(r.cases.length, 4);
      for (const c of r.cases) {
        assert.equal(c.inputMaxAbsDiff, 0, `${c.case}: JS preprocessing differs from the golden input`);
        assert.ok(c.passed, `${c.case}: cosine ${c.cosine}, max |d| ${c.maxAbsError} > ${c.maxAbsLimit}`);
        if (mode === 'fp32') assert.ok(c.cosine >= 0.99999, `${c.case}: cosine ${c.cosine}`);
      }
      const minCos = Math.min(...r.cases.map((c) => c.cosine));
      const maxAbs = Math.max(...r.cases.map((c) => c.maxAbsError));
      console.log(`# golden ${mode} (${meta.model.mode}, tolerance ${JSON.stringify(r.tolerance)}): min cosine ${minCos.toFixed(7)}, max |d| ${maxAbs.toExponential(3)}`);
      await page.close();
    });
  }
});

describe('the built folder on a plain static server', () => {
  test('runs single-threaded without cross-origin isolation and passes its golden vectors', async () => {
    const site = buildSite(fixture('bundle_fp32'), path.join(FIXTURES, 'site'));
    const listing = JSON.parse(readFileSync(path.join(site, 'site.json')));
    assert.ok(listing.files.some((f) => f.path === 'node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm'));
    const server = await staticServer(site);
    try {
      const { page, state } = await openDemo(browser, server.url);
      assert.equal(state.error, null, JSON.stringify(state.error));
      assert.equal(state.isolated, false);
      assert.equal(state.threaded, false, 'loadLiteRt must pick the single-threaded build without isolation');
      const r = await page.evaluate(() => window.demoApi.golden());
      assert.ok(r.passed);
      await page.close();
    } finally {
      await server.close();
    }
  });
});

describe('alignment and preprocessing equal pocketnet_tf on the golden photos', () => {
  test('5-point alignment, model input, detector input and BlazeFace decoding', async () => {
    const { page, state } = await openDemo(browser, servers.fp32.url);
    assert.equal(state.error, null);
    const cases = readJson('scenes', 'cases.json');
    const meta = JSON.parse(readFileSync(fixture('bundle_fp32', 'metadata.json')));
    for (const c of cases.cases) {
      const scene = readFileSync(fixture('scenes', c.image)).toString('base64');
      const reg = readFileSync(fixture('scenes', c.regressors)).toString('base64');
      const cls = readFileSync(fixture('scenes', c.classificators)).toString('base64');
      const got = await page.evaluate(async (sceneB64, regB64, clsB64, landmarks, pyDetections, meta) => {
        const bytes = (b64) => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        const f32 = (b64) => { const b = bytes(b64); return new Float32Array(b.buffer, 0, b.length / 4); };
        const hex = async (data) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', data)), (x) => x.toString(16).padStart(2, '0')).join('');
        const align = await window.demoApi.modules.align();
        const bf = await window.demoApi.modules.blazeface();
        const pre = await window.demoApi.modules.preprocess();
        const img = await window.demoApi.modules.image();
        const image = await img.decodeImage(new Blob([bytes(sceneB64)], { type: 'image/png' }));
        const size = meta.alignment.output_size;
        const { crop, matrix } = align.alignFace(image, landmarks, meta.alignment.template, size);
        const input = pre.modelInput(crop.data, meta.input.normalization);
        const t = bf.inputTransform(image.width, image.height);
        const detIn = bf.prepareInput(image, t);
        const decoded = bf.weightedNms(bf.decode(f32(regB64), f32(clsB64))).map((d) => bf.detectionToImage(t, d));
        const kpCrop = pyDetections.length ? bf.alignFromKeypoints(image, pyDetections[0].keypoints, meta.alignment.template, size).crop : null;
        const live = await window.demoApi.state.demo.detector.detect(image);
        return {
          matrix, cropSha: await hex(crop.data), inputSha: await hex(input), detInSha: await hex(detIn),
          decoded, kpCropSha: kpCrop && await hex(kpCrop.data), live,
        };
      }, scene, reg, cls, c.landmarks, c.detections, meta);
      assert.deepEqual(got.matrix, c.matrix, `${c.image}: similarity matrix`);
      assert.equal(got.cropSha, c.crop_sha256, `${c.image}: aligned crop differs from pocketnet_tf's`);
      assert.equal(got.inputSha, c.input_sha256, `${c.image}: model input differs from pocketnet_tf's`);
      assert.equal(got.detInSha, c.detector_input_sha256, `${c.image}: BlazeFace input differs`);
      assert.equal(c.detections.length, 1);
      assert.equal(got.decoded.length, c.detections.length, `${c.image}: detections after NMS`);
      for (const [j, p] of [[got.decoded[0], c.detections[0]]]) {
        assert.ok(Math.abs(j.score - p.score) <= 1e-12);
        j.box.forEach((v, k) => assert.ok(Math.abs(v - p.box[k]) <= 1e-9, `box ${k}`));
        j.keypoints.forEach((kp, k) => kp.forEach((v, a) => assert.ok(Math.abs(v - p.keypoints[k][a]) <= 1e-9, `keypoint ${k}`)));
      }
      assert.equal(got.kpCropSha, c.keypoint_crop_sha256, `${c.image}: keypoint crop`);
      // BlazeFace run by LiteRT.js (WASM) finds the same face as ai_edge_litert (native) to 0.5 px.
      assert.equal(got.live.length, 1, `${c.image}: live detections`);
      got.live[0].keypoints.slice(0, 4).forEach((kp, k) => kp.forEach((v, a) =>
        assert.ok(Math.abs(v - c.detections[0].keypoints[k][a]) <= 0.5, `${c.image}: live keypoint ${k}: ${v} vs ${c.detections[0].keypoints[k][a]}`)));
    }
    await page.close();
  });
});

describe('camera path with Chromium\'s fake camera', () => {
  let galleryJson;
  test('enrol alice from the stream, then alice matches', async () => {
    const { page, state } = await openDemo(browser, servers.fp32.url);
    assert.equal(state.error, null);
    const first = await page.evaluate(() => window.demoApi.capture());
    assert.equal(first.faces, 1, 'one face in the camera frame');
    assert.equal(first.match.name, null, 'empty gallery');
    assert.deepEqual(await page.evaluate(() => window.demoApi.enrol('alice')), ['alice']);
    await new Promise((r) => setTimeout(r, 700));
    const again = await page.evaluate(() => window.demoApi.capture());
    assert.equal(again.match.name, 'alice');
    assert.ok(again.match.accepted, `alice scored ${again.match.score} < ${again.match.threshold}`);
    console.log(`# camera: alice vs enrolled alice cosine ${again.match.score.toFixed(6)} (threshold ${again.match.threshold.toFixed(6)}), detection ${again.detectMs.toFixed(1)} ms, embedding ${again.embedMs.toFixed(1)} ms`);
    assert.equal(await page.$eval('#decision', (el) => el.textContent), 'match: alice');
    await page.setViewport({ width: 1000, height: 760 });
    // docs/match.png is made with WEB_DEMO_SCREENSHOT=docs/match.png npm test (not rewritten by every run).
    const shot = path.resolve(WEB_ROOT, process.env.WEB_DEMO_SCREENSHOT ?? path.join(FIXTURES, 'match.png'));
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(readFileSync(shot).length > 10000, 'screenshot written');
    galleryJson = await page.evaluate(() => window.demoApi.exportGallery());
    // The gallery survives a reload (IndexedDB).
    const reload = await openDemo(browser, servers.fp32.url);
    assert.deepEqual(await reload.page.evaluate(() => window.demoApi.state.demo.gallery.names), ['alice']);
    await reload.page.close();
    await page.close();
  });

  test('bob, in another camera stream, does not match the imported gallery', async () => {
    assert.ok(galleryJson, 'needs the gallery of the previous test');
    const gallery = JSON.parse(galleryJson);
    assert.equal(gallery.format, 'pocketnet_tf.gallery');
    assert.equal(gallery.model_sha256, sha(readFileSync(fixture('bundle_fp32', 'model.tflite'))));
    const bobBrowser = await launch({ camera: fixture(readJson('camera.json').bob.file) });
    try {
      const { page, state } = await openDemo(bobBrowser, servers.fp32.url);
      assert.equal(state.error, null);
      await page.evaluate((text) => window.demoApi.importGallery(text), galleryJson);
      const r = await page.evaluate(() => window.demoApi.capture());
      assert.equal(r.faces, 1);
      assert.equal(r.match.name, 'alice', 'the only enrolled identity is the best');
      assert.ok(!r.match.accepted, `bob accepted as alice with cosine ${r.match.score}`);
      console.log(`# camera: bob vs enrolled alice cosine ${r.match.score.toFixed(6)} -> rejected`);
      assert.equal(await page.$eval('#decision', (el) => el.textContent), 'no match (unknown person)');
    } finally {
      await bobBrowser.close();
    }
  });
});

describe('bundle refusal', () => {
  test('a bundle whose model bytes were changed is refused with a clear message', async () => {
    const { page, state } = await openDemo(browser, servers.tampered.url);
    assert.equal(state.ready, false);
    assert.ok(state.error?.bundle, JSON.stringify(state.error));
    assert.match(state.error.message, /^model\.tflite: sha256 [0-9a-f]{64} does not match metadata\.json/);
    assert.match(await page.$eval('#status', (el) => el.textContent), /^bundle refused: model\.tflite: sha256/);
    await page.close();
  });

  test('a sealed bundle loads; broken seals, schema and input spec are refused', async () => {
    const sealed = await serve(fixture('bundle_sealed'));
    try {
      const { page, state } = await openDemo(browser, sealed.url);
      assert.equal(state.error, null, JSON.stringify(state.error));
      assert.equal(await page.evaluate(() => window.demoApi.state.demo.bundle.sealed), true);
      assert.match(await page.$eval('#bundle', (el) => el.textContent), /sealed/);
      await page.close();
    } finally {
      await sealed.close();
    }
    for (const [name, message] of Object.entries(readJson('refusals.json'))) {
      const server = await serve(fixture(name), ['--nocheck_bundle']);
      try {
        const { page, state } = await openDemo(browser, server.url);
        assert.ok(state.error?.bundle, `${name}: not refused (${JSON.stringify(state.error)})`);
        assert.ok(state.error.message.startsWith(message), `${name}: ${state.error.message}`);
        await page.close();
      } finally {
        await server.close();
      }
    }
  });
});
