// reel's web page in Debian's Chromium, against a real `reel serve` (scripts/page_test.sh
// starts it and sets REEL_BASE). Every check throws on failure; the process exits non-zero.
// REEL_SCREENSHOTS, when set, is where a PNG of each state goes.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';

const BASE = process.env.REEL_BASE;
// A second server, serving a free-form model (the tiny Wan2.1 checkpoint).
const WAN_BASE = process.env.REEL_WAN_BASE;
const SHOTS = process.env.REEL_SCREENSHOTS || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
assert.ok(BASE, 'REEL_BASE must name the server');
assert.ok(WAN_BASE, 'REEL_WAN_BASE must name the free-form model\'s server');
if (!existsSync(CHROMIUM)) {
  console.error(`page test: no Chromium at ${CHROMIUM}`);
  process.exit(1);
}

const started = Date.now();
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
const failures = [];

// A check that is reported at the end instead of stopping the run (used for the one check
// that depends on a server feature other branches add: the `preview` event).
function softCheck(ok, message) {
  if (!ok) {
    failures.push(message);
    log('FAILED:', message);
  }
}

async function api(method, p, body, token, base = BASE) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function shot(page, name) {
  if (!SHOTS) return;
  await page.evaluate(() => window.scrollTo(0, 0)); // (the side column is sticky)
  await page.waitForTimeout(150); // let transitions settle
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  log('screenshot', name);
}

// Errors, console errors, failed requests and requests to other origins, as `page` meets them.
function watchPage(page, base) {
  const problems = [];
  const external = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    // The error checks below provoke 4xx answers on purpose; the browser logs those.
    if (m.type() === 'error' && !/the server responded with a status of 4\d\d/.test(text)) problems.push(`console: ${text}`);
  });
  page.on('requestfailed', (r) => {
    // Streams and media the page aborts itself when it switches tasks are not failures.
    const f = r.failure() && r.failure().errorText;
    if (f && !/ERR_ABORTED/.test(f)) problems.push(`request failed: ${r.url()} ${f}`);
  });
  page.on('request', (r) => { if (!r.url().startsWith(base) && !/^(data|blob):/.test(r.url())) external.push(r.url()); });
  return { problems, external };
}

// The form's fields the page shows (those of the served model), with their attributes.
async function formFields(page) {
  await page.waitForFunction(() => !document.getElementById('submit').disabled);
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-field]')].filter((b) => !b.hidden).map((b) => {
    const i = document.getElementById(b.dataset.field);
    return [b.dataset.field, i.tagName === 'SELECT'
      ? { value: i.value, options: [...i.options].map((o) => o.value) }
      : { value: i.value, min: i.min, max: i.max, step: i.step }];
  })));
}

// Watches the task view: every percentage shown, and whether a preview or a live frame was on
// screen before the task completed.
async function watchTask(page) {
  await page.evaluate(() => {
    const seen = { pcts: [], previewBeforeDone: false, frameBeforeDone: false };
    window.__seen = seen;
    const status = () => document.getElementById('task-status').textContent;
    new MutationObserver(() => {
      const p = document.getElementById('task-pct').textContent;
      if (seen.pcts[seen.pcts.length - 1] !== p) seen.pcts.push(p);
      if (status() === 'completed') return;
      if (document.querySelector('#task img[src^="data:image/"]:not([hidden])')) seen.previewBeforeDone = true;
      const live = document.getElementById('live');
      if (!live.hidden && /\/frames\/\d+$|^blob:/.test(live.src)) seen.frameBeforeDone = true;
    }).observe(document.getElementById('task'), { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Playwright adds --headless and a fresh --user-data-dir; these keep Chromium off the
  // network it cannot reach here.
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
log('chromium', browser.version());

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const { problems, external } = watchPage(page, BASE);

  // ---- 1. The page loads, with its stats panel filled.
  const res = await page.goto(BASE + '/');
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /script-src 'self'/);
  await page.waitForFunction(() => document.getElementById('stat-queue').textContent.includes('/'));
  assert.equal(await page.locator('#task').isVisible(), false);
  assert.equal(await page.locator('#key-box').isVisible(), false, 'no key field while the server is open');
  // The built-in model's form, as its CreateTask schema has it: no free-form field.
  const builtIn = await formFields(page);
  assert.deepEqual(Object.keys(builtIn), ['num_scenes', 'seconds_per_scene', 'size', 'fps', 'steps', 'guidance']);
  assert.deepEqual(Object.values(builtIn).map((f) => f.value), ['3', '2', '256', '24', '20', '4']);
  assert.deepEqual([builtIn.size.min, builtIn.size.max, builtIn.size.step], ['64', '512', '16']);
  await shot(page, '1-form');

  // ---- 2. Type a prompt (Chinese: UTF-8 all the way), set the options, click.
  const running = SHOTS ? { scenes: 2, seconds: 2, fps: 12, steps: 16 } : { scenes: 2, seconds: 1, fps: 8, steps: 4 };
  const prompt = '一个红色圆形向右移动，然后变大';
  await page.locator('#prompt').click();
  await page.keyboard.type(prompt);
  for (const [id, v] of [['num_scenes', running.scenes], ['seconds_per_scene', running.seconds], ['size', 256], ['fps', running.fps], ['steps', running.steps], ['seed', 7]]) {
    await page.locator('#' + id).fill('');
    await page.locator('#' + id).type(String(v));
  }
  await watchTask(page);
  await page.locator('#submit').click();
  await page.waitForFunction(() => /^Task #\d+$/.test(document.getElementById('task-title').textContent));
  const id = Number((await page.locator('#task-title').textContent()).slice(6));
  log('task', id, 'submitted');
  const stored = await api('GET', `/api/tasks/${id}`);
  assert.equal(stored.body.params.prompt, prompt, 'the prompt reached the server intact');
  assert.equal(stored.body.params.num_scenes, running.scenes);
  assert.equal(stored.body.params.steps, running.steps);
  assert.equal(stored.body.params.seed, 7);
  assert.equal(await page.locator('#task-prompt').textContent(), prompt);

  // The plan: one card per scene, with its caption once planned.
  await page.waitForFunction((n) => document.querySelectorAll('#scenes .scene').length === n
    && [...document.querySelectorAll('.scene-caption')].every((c) => c.textContent !== '…'), running.scenes, { timeout: 60_000 });

  // A mid-run screenshot: the first moment something is on screen and progress is under way.
  if (SHOTS) {
    await page.waitForFunction(() => {
      const p = parseInt(document.getElementById('task-pct').textContent, 10);
      return p >= 40 && p < 100;
    }, null, { timeout: 300_000, polling: 100 }).catch(() => log('no mid-run state caught for the screenshot'));
    await shot(page, '2-running');
  }

  // ---- 3. Progress reaches 100%, the task completes, the video plays.
  await page.waitForFunction(() => document.getElementById('task-pct').textContent === '100%', null, { timeout: 600_000, polling: 100 });
  log('progress 100%');
  await page.waitForFunction(() => document.getElementById('task-status').textContent === 'completed', null, { timeout: 300_000 });
  log('completed');
  const seen = await page.evaluate(() => window.__seen);
  log('percentages shown:', seen.pcts.join(' '));
  assert.ok(seen.pcts.some((p) => p !== '0%' && p !== '100%'), `progress advanced through intermediate values: ${seen.pcts}`);
  assert.ok(seen.frameBeforeDone, 'live frames were on screen before completion');
  softCheck(seen.previewBeforeDone, 'a preview (the `preview` SSE event) was on screen before completion');

  await page.waitForFunction(() => {
    const v = document.getElementById('video');
    return !v.hidden && v.readyState >= 3 && v.videoWidth > 0;
  }, null, { timeout: 30_000 });
  const media = await page.evaluate(async () => {
    const v = document.getElementById('video');
    if (v.paused) await v.play();
    const t0 = v.currentTime;
    let advanced = false;
    for (let i = 0; i < 20 && !advanced; i++) {
      await new Promise((r) => setTimeout(r, 100));
      advanced = v.currentTime > t0 || v.currentTime < t0 - 0.05; // (it loops)
    }
    return { readyState: v.readyState, videoWidth: v.videoWidth, videoHeight: v.videoHeight, duration: v.duration,
      advanced, paused: v.paused, error: v.error && v.error.message, src: v.currentSrc };
  });
  log('video', JSON.stringify(media));
  assert.equal(media.error, null);
  assert.ok(media.readyState >= 3, 'readyState >= 3');
  assert.equal(media.videoWidth, 256);
  assert.equal(media.videoHeight, 256);
  assert.ok(media.advanced, 'currentTime advances');
  assert.ok(Math.abs(media.duration - running.scenes * running.seconds) < 0.5, `duration ${media.duration}`);
  const download = await page.evaluate(async () => {
    const a = document.getElementById('download');
    const r = await fetch(a.href);
    return { visible: !a.hidden, name: a.download, type: r.headers.get('content-type'), size: (await r.arrayBuffer()).byteLength };
  });
  assert.deepEqual([download.visible, download.name, download.type], [true, `reel-${id}.mp4`, 'video/mp4']);
  assert.ok(download.size > 1000);
  // Scene thumbnails are real frames now.
  assert.equal(await page.locator('.scene-thumb img:not([hidden])').count(), running.scenes);
  await page.locator('#task').scrollIntoViewIfNeeded();
  await shot(page, '3-completed');
  if (SHOTS) {
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot(page, '3-completed-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  }

  // ---- 4. The task list: a second task, cancelled from the list, then deleted; open the first.
  await page.waitForFunction((id) => {
    const li = document.querySelector(`#tasks li[data-id="${id}"]`);
    return li && li.textContent.includes('completed');
  }, id, { timeout: 15_000 });
  await page.locator('#prompt').fill('');
  await page.locator('#prompt').type('a big blue box slides to the right, then it gets smaller');
  await page.locator('#steps').fill('60');
  await page.locator('#num_scenes').fill('3');
  await page.locator('#submit').click();
  await page.waitForFunction((id) => document.getElementById('task-title').textContent !== `Task #${id}`, id);
  const second = Number((await page.locator('#task-title').textContent()).slice(6));
  log('task', second, 'submitted');
  await page.locator('#tasks-refresh').click();
  const item = page.locator(`#tasks li[data-id="${second}"]`);
  await item.waitFor();
  if (SHOTS) {
    await page.waitForFunction((id) => {
      const b = document.querySelector(`#tasks li[data-id="${id}"] .badge`);
      return b && b.textContent !== 'queued';
    }, second, { timeout: 30_000 }).catch(() => {});
    await page.locator('#tasks-refresh').click();
    await page.waitForTimeout(300);
    await page.locator('.side-col').screenshot({ path: path.join(SHOTS, '4-tasks.png') });
    log('screenshot 4-tasks');
  }
  await item.getByRole('button', { name: 'Cancel' }).click();
  await page.waitForFunction((id) => {
    const li = document.querySelector(`#tasks li[data-id="${id}"]`);
    return li && li.textContent.includes('cancelled');
  }, second, { timeout: 15_000 });
  assert.equal((await api('GET', `/api/tasks/${second}`)).body.status, 'cancelled');
  await page.waitForFunction(() => document.getElementById('task-status').textContent === 'cancelled');
  log('cancelled', second);
  const del = item.getByRole('button', { name: 'Delete' });
  await del.click();
  await item.getByRole('button', { name: 'Sure?' }).click();
  await item.waitFor({ state: 'detached', timeout: 15_000 });
  assert.equal((await api('GET', `/api/tasks/${second}`)).status, 404, 'deleted');
  assert.equal(await page.locator('#task').isVisible(), false, 'the deleted task left the view');
  log('deleted', second);
  await page.locator(`#tasks li[data-id="${id}"]`).getByRole('button', { name: 'Open' }).click();
  await page.waitForFunction((id) => {
    const v = document.getElementById('video');
    return document.getElementById('task-title').textContent === `Task #${id}` && !v.hidden && v.readyState >= 3 && v.videoWidth === 256;
  }, id, { timeout: 30_000 });
  log('opened', id);

  // ---- 5. A bad input: the page shows the API's own message.
  const bad = { prompt: 'a red circle', num_scenes: 2, seconds_per_scene: 1, size: 100, fps: 8, steps: 4, guidance: 4 };
  const expected = await api('POST', '/api/tasks', bad);
  assert.equal(expected.status, 400);
  await page.locator('#prompt').fill('');
  await page.locator('#prompt').type(bad.prompt);
  for (const [f, v] of Object.entries(bad)) if (f !== 'prompt') await page.locator('#' + f).fill(String(v));
  await page.locator('#seed').fill('');
  await page.locator('#submit').click();
  await page.locator('#error').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#error-message').textContent(), expected.body.message);
  log('error shown:', expected.body.message);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, '5-error');
  // It goes away with the next good submission's attempt (and no task was made).
  const tasks = (await api('GET', '/api/tasks')).body.tasks.map((t) => t.id);
  assert.deepEqual(tasks, [id], 'the bad input made no task');

  // ---- 6. With API keys: the page asks for one, keeps it, and works through it.
  const made = await api('POST', '/api/keys', { name: 'page', admin: true });
  assert.equal(made.status, 201);
  await page.reload();
  await page.locator('#key-box').waitFor({ state: 'visible' });
  await page.waitForFunction(() => /needs an API key/.test(document.getElementById('key-note').textContent));
  await page.locator('#key').type(made.body.token);
  await page.locator('#key-form button[type=submit]').click();
  await page.waitForFunction((id) => document.querySelector(`#tasks li[data-id="${id}"]`), id);
  await page.waitForFunction(() => document.getElementById('stat-queue').textContent.includes('/'));
  await shot(page, '6-key');
  await page.reload();
  assert.equal(await page.locator('#key').inputValue(), made.body.token, 'the key is kept in the browser');
  await page.waitForFunction((id) => document.querySelector(`#tasks li[data-id="${id}"]`), id);
  // A small task through the key: events, frames and the video all come with it.
  await page.locator('#prompt').fill('');
  await page.locator('#prompt').type('a green square moving up');
  for (const [f, v] of [['num_scenes', 1], ['seconds_per_scene', 1], ['size', 64], ['fps', 4], ['steps', 2]]) await page.locator('#' + f).fill(String(v));
  await page.locator('#submit').click();
  await page.waitForFunction((id) => document.getElementById('task-title').textContent !== `Task #${id}`, id);
  const third = Number((await page.locator('#task-title').textContent()).slice(6));
  assert.equal((await api('GET', `/api/tasks/${third}`, undefined, made.body.token)).body.params.size, 64);
  await page.waitForFunction(() => {
    const v = document.getElementById('video');
    return document.getElementById('task-status').textContent === 'completed' && !v.hidden && v.readyState >= 3;
  }, null, { timeout: 300_000 });
  const keyed = await page.evaluate(() => {
    const v = document.getElementById('video');
    return { src: v.currentSrc, width: v.videoWidth, pct: document.getElementById('task-pct').textContent };
  });
  assert.match(keyed.src, /^blob:/, 'with a key, the video is fetched with it');
  assert.equal(keyed.width, 64);
  assert.equal(keyed.pct, '100%');
  assert.ok(!(await page.evaluate(() => location.href)).includes(made.body.token), 'no key in the URL');
  log('keyed task played');

  assert.deepEqual(external, [], 'nothing was fetched from anywhere else');
  assert.deepEqual(problems, [], 'no page errors, console errors or failed requests');
  await context.close();

  // ---- 7. A free-form model (the tiny Wan2.1 checkpoint): the form is its CreateTask's,
  // and a non-square task is followed to its video.
  const wanStarted = Date.now();
  const wanContext = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const wp = await wanContext.newPage();
  const wanSeen = watchPage(wp, WAN_BASE);
  const schema = (await api('GET', '/openapi.json', undefined, undefined, WAN_BASE)).body.components.schemas.CreateTask.properties;
  assert.equal((await wp.goto(WAN_BASE + '/')).status(), 200);
  const form = await formFields(wp);
  assert.deepEqual(Object.keys(form), ['negative_prompt', 'num_scenes', 'width', 'height', 'num_frames', 'fps', 'steps', 'guidance', 'scheduler']);
  for (const f of ['width', 'height']) {
    const s = schema[f];
    assert.deepEqual(form[f], { value: String(s.default), min: String(s.minimum), max: String(s.maximum), step: String(s.multipleOf) }, f);
  }
  assert.deepEqual([form.width.step, form.height.step], ['24', '16'], 'the tiny checkpoint\'s multiples');
  assert.deepEqual(form.num_frames, { value: String(schema.num_frames.default), min: '1', max: String(schema.num_frames.maximum), step: '4' }, 'frames: 1 + 4k');
  assert.equal(form.fps.value, String(schema.fps.default), 'FPS defaults to the model\'s');
  assert.deepEqual(form.scheduler, { value: schema.scheduler.default, options: schema.scheduler.enum });
  assert.ok(schema.scheduler.enum.length >= 2, `schedulers: ${schema.scheduler.enum}`);
  const fps = Number(form.fps.value);
  const wan = { prompt: 'a red fox runs through fresh snow, then it leaps over a log', negative_prompt: 'blurry',
    num_scenes: 2, width: 48, height: 32, num_frames: 9, steps: 3, seed: 7 };
  // The scheduler that is not the default, so the choice is seen to be sent.
  const scheduler = schema.scheduler.enum.find((s) => s !== schema.scheduler.default);
  await wp.locator('#prompt').fill(wan.prompt);
  for (const f of ['negative_prompt', 'num_scenes', 'width', 'height', 'num_frames', 'steps', 'seed']) await wp.locator('#' + f).fill(String(wan[f]));
  await wp.locator('#scheduler').selectOption(scheduler);
  assert.equal(await wp.locator('#estimate').textContent(), `2 × 9 frames at 48×32 · ${+(18 / fps).toFixed(1)} s of video`);
  await wp.evaluate(() => document.activeElement.blur()); // (no focus ring in the screenshot)
  await shot(wp, '7-free-form');
  await watchTask(wp);
  await wp.locator('#submit').click();
  await wp.waitForFunction(() => /^Task #\d+$/.test(document.getElementById('task-title').textContent));
  const wanId = Number((await wp.locator('#task-title').textContent()).slice(6));
  const wanTask = (await api('GET', `/api/tasks/${wanId}`, undefined, undefined, WAN_BASE)).body;
  assert.deepEqual(wanTask.params.free_form, { width: 48, height: 32, num_frames: 9, negative_prompt: 'blurry', scheduler });
  assert.deepEqual([wanTask.params.num_scenes, wanTask.params.steps, wanTask.params.seed, wanTask.params.fps], [2, 3, 7, fps]);
  await wp.waitForFunction(() => {
    const v = document.getElementById('video');
    return document.getElementById('task-status').textContent === 'completed' && !v.hidden && v.readyState === 4;
  }, null, { timeout: 120_000 });
  const wanSeenTask = await wp.evaluate(() => window.__seen);
  assert.ok(wanSeenTask.frameBeforeDone, 'live frames were on screen before completion');
  const wanMedia = await wp.evaluate(() => {
    const v = document.getElementById('video');
    const dd = [...document.querySelectorAll('#task-meta dt')].map((dt) => [dt.textContent, dt.nextElementSibling.textContent]);
    return { readyState: v.readyState, videoWidth: v.videoWidth, videoHeight: v.videoHeight, duration: v.duration,
      error: v.error && v.error.message, meta: Object.fromEntries(dd), pct: document.getElementById('task-pct').textContent,
      screen: (() => { const r = document.getElementById('screen').getBoundingClientRect(); return +(r.width / r.height).toFixed(2); })(),
      thumbs: document.querySelectorAll('.scene-thumb img:not([hidden])').length };
  });
  log('free-form video', JSON.stringify(wanMedia));
  assert.equal(wanMedia.error, null);
  assert.deepEqual([wanMedia.readyState, wanMedia.videoWidth, wanMedia.videoHeight], [4, 48, 32]);
  assert.ok(Math.abs(wanMedia.duration - 18 / fps) < 0.15, `duration ${wanMedia.duration}`);
  assert.equal(wanMedia.meta.Size, `48×32 @ ${fps} fps`);
  assert.equal(wanMedia.meta.Scenes, `2 × 9 frames · ${+(9 / fps).toFixed(2)} s`);
  assert.equal(wanMedia.meta.Negative, 'blurry');
  assert.equal(wanMedia.pct, '100%');
  assert.equal(wanMedia.screen, 1.5, 'the screen takes the frames\' aspect');
  assert.equal(wanMedia.thumbs, 2);
  // A width off the model's multiple: the page shows the server's own message.
  await wp.locator('#width').fill('40');
  const wanBad = await api('POST', '/api/tasks', { ...wan, width: 40, scheduler }, undefined, WAN_BASE);
  assert.equal(wanBad.status, 400);
  await wp.locator('#submit').click();
  await wp.locator('#error').waitFor({ state: 'visible' });
  assert.equal(await wp.locator('#error-message').textContent(), wanBad.body.message);
  log('free-form error shown:', wanBad.body.message);
  assert.deepEqual((await api('GET', '/api/tasks', undefined, undefined, WAN_BASE)).body.tasks.map((t) => t.id), [wanId], 'the bad width made no task');
  assert.deepEqual(wanSeen.external, [], 'nothing was fetched from anywhere else (free-form)');
  assert.deepEqual(wanSeen.problems, [], 'no page errors, console errors or failed requests (free-form)');
  await wanContext.close();
  log(`free-form model: ${((Date.now() - wanStarted) / 1000).toFixed(1)} s`);
} finally {
  await browser.close();
}

if (failures.length) {
  console.error(`page test: ${failures.length} check(s) failed:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
log('page test: all checks passed');
