// reel's page: plain JavaScript over the /api routes. No framework, nothing fetched from
// elsewhere. With an API key (kept in localStorage), every call sends it as a Bearer header;
// that is why events are read with fetch() (EventSource cannot send headers) and why media is
// fetched into blob: URLs when a key is set.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = 'reel.apiKey';
  const FINAL = new Set(['completed', 'failed', 'cancelled']);
  const STATES = ['queued', 'planning', 'generating', 'post_processing', 'encoding', 'completed', 'failed', 'cancelled'];
  const MAX_FLIPBOOK = 120; // frames the live view loads at most (a stride beyond)

  let apiKey = '';
  try { apiKey = localStorage.getItem(KEY_STORE) || ''; } catch (_) { /* storage off */ }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    if (apiKey) h.Authorization = 'Bearer ' + apiKey;
    return h;
  }

  // The API's own message from an error answer: {code, message} or OpenAI's {error: {...}}.
  function errorOf(status, statusText, text) {
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    const e = body && (body.error && typeof body.error === 'object' ? body.error : body);
    const message = (e && e.message) || `${status} ${statusText || 'error'}`;
    const code = (e && (e.code || e.type)) || `http_${status}`;
    if (status === 401) keyNeeded(message);
    return new ApiError(status, code, message);
  }

  async function request(method, path, body, extra) {
    const init = { method, headers: authHeaders(extra && extra.headers) };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    if (extra && extra.signal) init.signal = extra.signal;
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'The server cannot be reached (' + (e && e.message || e) + ').');
    }
    if (!res.ok) throw errorOf(res.status, res.statusText, await res.text());
    return res;
  }

  async function api(method, path, body) {
    const res = await request(method, path, body);
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    // Seeds are 64-bit: keep the exact digits beside the (rounded) number.
    const seed = /"seed":(\d+)/.exec(text);
    if (data && data.params && seed) data.params.seed_text = seed[1];
    return data;
  }

  // A blob: URL for a media path (fetched with the key), for <img> and <video>.
  async function blobUrl(path, signal) {
    const res = await request('GET', path, undefined, { signal });
    return URL.createObjectURL(await res.blob());
  }

  // Server-sent events over fetch: calls onEvent(name, data) per event; resolves when the
  // stream ends.
  async function streamEvents(path, onEvent, signal) {
    const res = await request('GET', path, undefined, { headers: { accept: 'text/event-stream' }, signal });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf = (buf + value).replace(/\r\n?/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (!line || line.startsWith(':')) continue;
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          let v = i < 0 ? '' : line.slice(i + 1);
          if (v.startsWith(' ')) v = v.slice(1);
          if (field === 'event') name = v;
          else if (field === 'data') data.push(v);
        }
        if (data.length) {
          let parsed;
          try { parsed = JSON.parse(data.join('\n')); } catch (_) { parsed = data.join('\n'); }
          onEvent(name, parsed);
        }
      }
    }
  }

  // ---------- helpers ----------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  const pct = (x) => Math.max(0, Math.min(100, Math.floor((x || 0) * 100 + 1e-6)));

  function setBar(bar, fraction, done) {
    const p = pct(fraction);
    bar.firstElementChild.style.width = p + '%';
    bar.setAttribute('aria-valuenow', String(p));
    bar.classList.toggle('done', !!done);
  }

  function badge(node, status) {
    node.textContent = (status || '').replace('_', ' ');
    node.className = 'badge s-' + status;
  }

  function bytes(n) {
    if (!Number.isFinite(n)) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + ' ' + u[i];
  }

  function ago(ms) {
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 60) return Math.floor(s) + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return new Date(ms).toLocaleDateString();
  }

  // A task's scene shape from its own parameters: a free-form model's frame size and count
  // (`params.free_form`), else the built-in model's square frames over seconds_per_scene (a
  // free-form task's record carries those fields too, at their unused defaults).
  function shapeOf(p) {
    const f = p.free_form;
    if (f) return { width: f.width, height: f.height, frames: f.num_frames, seconds: f.num_frames / p.fps };
    return { width: p.size, height: p.size, frames: Math.max(2, Math.round(p.seconds_per_scene * p.fps)), seconds: p.seconds_per_scene };
  }

  // Screens and thumbnails take a wide frame's aspect; a tall one is letterboxed in a square
  // (at its own aspect it would push the page's controls out of view).
  function fitAspect(node, shape) {
    node.style.aspectRatio = `${Math.max(1, shape.width / shape.height)}`;
  }

  // ---------- errors ----------

  function showError(err) {
    if (err && err.name === 'AbortError') return;
    const box = $('error');
    box.replaceChildren(
      el('strong', { text: err.status ? 'Error' : 'Cannot reach the server' }),
      el('span', { id: 'error-message', text: err.message || String(err) }),
      err.code ? el('span', { class: 'code', text: err.code }) : null,
    );
    box.hidden = false;
  }

  function clearError() {
    $('error').hidden = true;
    $('error').replaceChildren();
  }

  // ---------- API key ----------

  function keyNeeded(message) {
    $('key-box').hidden = false;
    $('key-toggle').setAttribute('aria-expanded', 'true');
    $('key-note').textContent = apiKey
      ? 'The server refused this key: ' + message
      : 'This server needs an API key. It is kept in this browser only (localStorage) and sent as Authorization: Bearer.';
  }

  function initKey() {
    $('key').value = apiKey;
    $('key-box').hidden = !apiKey;
    $('key-toggle').textContent = apiKey ? 'API key ✓' : 'API key';
    $('key-toggle').addEventListener('click', () => {
      const box = $('key-box');
      box.hidden = !box.hidden;
      $('key-toggle').setAttribute('aria-expanded', String(!box.hidden));
      if (!box.hidden) $('key').focus();
    });
    $('key-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      apiKey = $('key').value.trim();
      try {
        if (apiKey) localStorage.setItem(KEY_STORE, apiKey);
        else localStorage.removeItem(KEY_STORE);
      } catch (_) { /* storage off: kept for this page only */ }
      $('key-toggle').textContent = apiKey ? 'API key ✓' : 'API key';
      $('key-note').textContent = apiKey ? 'Saved in this browser.' : 'No key: calls go without one.';
      clearError();
      refreshTasks();
      refreshStats();
    });
    $('key-forget').addEventListener('click', () => {
      $('key').value = '';
      $('key-form').requestSubmit();
    });
  }

  // ---------- the form ----------

  // The fields the served model may take; the HTML holds them all, and the ones its CreateTask
  // schema does not name stay hidden and are not sent.
  const NUMBER_FIELDS = ['num_scenes', 'seconds_per_scene', 'size', 'width', 'height', 'num_frames', 'fps', 'steps', 'guidance'];
  const TEXT_FIELDS = ['negative_prompt', 'scheduler'];

  const offered = (f) => !document.querySelector(`[data-field="${f}"]`).hidden;

  function requestBody() {
    const body = { prompt: $('prompt').value };
    for (const f of NUMBER_FIELDS) {
      const raw = $(f).value.trim();
      if (offered(f) && raw !== '') body[f] = Number(raw);
    }
    for (const f of TEXT_FIELDS) {
      if (offered(f) && $(f).value !== '') body[f] = $(f).value;
    }
    let json = JSON.stringify(body);
    // The seed is sent as typed (64-bit digits would lose precision as a JS number); the API
    // judges anything else.
    const seed = $('seed').value.trim();
    if (seed !== '') {
      const value = /^\d+$/.test(seed) ? seed : JSON.stringify(seed);
      json = json.slice(0, -1) + ',"seed":' + value + '}';
    }
    return json;
  }

  function updateEstimate() {
    const num = (f) => Number($(f).value);
    const n = num('num_scenes');
    const p = { fps: num('fps'), size: num('size'), seconds_per_scene: num('seconds_per_scene') };
    if (offered('width')) p.free_form = { width: num('width'), height: num('height'), num_frames: num('num_frames') };
    const shape = shapeOf(p);
    if (![n, p.fps, shape.width, shape.height, shape.seconds].every((x) => Number.isFinite(x) && x > 0)) {
      $('estimate').textContent = '';
      return;
    }
    $('estimate').textContent = `${n} × ${shape.frames} frames at ${shape.width}×${shape.height} · ${+(n * shape.seconds).toFixed(1)} s of video`;
  }

  // The form for the served model, from its CreateTask schema in /openapi.json: the fields it
  // names, with its defaults, bounds, multiples and choices (a free-form model's width,
  // height, frames, negative prompt and scheduler instead of the built-in model's size and
  // seconds per scene). The document is public, so no key is sent. Without it the page keeps
  // the HTML's form, the built-in model's, and the server judges what is sent.
  async function loadModelForm() {
    let props;
    try {
      const res = await fetch('/openapi.json');
      if (res.ok) props = (await res.json()).components.schemas.CreateTask.properties;
    } catch (_) { /* unreachable: keep the HTML's form */ }
    if (!props) return;
    for (const box of document.querySelectorAll('[data-field]')) {
      const f = box.dataset.field;
      const s = props[f];
      box.hidden = !s;
      if (!s) continue;
      const input = $(f);
      if (input.tagName === 'SELECT') {
        input.replaceChildren(...(s.enum || []).map((v) => el('option', { value: v, text: v })));
      } else if (input.type === 'number') {
        if (s.minimum !== undefined) input.min = String(s.minimum);
        if (s.maximum !== undefined) input.max = String(s.maximum);
        // num_frames is 1 + k·m, which JSON Schema cannot say: the document's x-frame-multiple
        // names m, and with min 1 a step of m offers exactly those counts.
        const m = s.multipleOf || s['x-frame-multiple'];
        if (m) input.step = String(m);
      }
      if (s.default !== undefined && s.default !== null) input.value = String(s.default);
    }
    updateEstimate();
  }

  function initForm() {
    $('form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearError();
      const button = $('submit');
      button.disabled = true;
      button.textContent = 'Submitting…';
      try {
        const task = await api('POST', '/api/tasks', requestBody());
        openTask(task.id, task);
        refreshTasks();
        refreshStats();
      } catch (e) {
        showError(e);
      } finally {
        button.disabled = false;
        button.textContent = 'Generate';
      }
    });
    $('prompt').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('form').requestSubmit();
    });
    for (const f of NUMBER_FIELDS) $(f).addEventListener('input', updateEstimate);
    updateEstimate();
    // Not sent before the form is the served model's.
    const button = $('submit');
    button.disabled = true;
    loadModelForm().finally(() => { button.disabled = false; });
  }

  // ---------- the task view ----------

  let view = null; // the task shown: {id, task, abort, scenes: [...], frames, ...}

  function closeView() {
    if (!view) return;
    view.abort.abort();
    clearInterval(view.flipTimer);
    for (const u of view.urls) URL.revokeObjectURL(u);
    view = null;
  }

  function sceneCard(i, plan) {
    const thumbImg = el('img', { alt: `scene ${i + 1}`, hidden: true });
    const tag = el('span', { class: 'screen-tag', hidden: true });
    const empty = el('span', { class: 'empty-thumb', text: 'waiting' });
    const thumb = el('div', { class: 'scene-thumb' }, thumbImg, empty, tag);
    fitAspect(thumb, view.shape);
    const bar = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, el('div'));
    const step = el('span', { class: 'scene-step', text: '' });
    const caption = el('p', { class: 'scene-caption', text: plan ? plan.caption : '…' });
    const chips = el('div', { class: 'chips' });
    for (const g of (plan && plan.guessed) || []) chips.append(el('span', { class: 'chip', title: 'left open by the prompt, drawn from the seed', text: 'guessed ' + g }));
    const li = el('li', { class: 'scene', 'data-scene': String(i) },
      thumb,
      el('div', { class: 'scene-head' }, el('span', { text: `Scene ${i + 1}` }), step),
      bar, caption, chips);
    return { li, thumbImg, tag, empty, bar, step, caption, chips, hasFrame: false, progress: 0 };
  }

  function renderPlan(task) {
    const n = task.params.num_scenes;
    const list = $('scenes');
    if (!view.scenes.length || (task.plan && !view.planShown)) {
      const old = view.scenes;
      view.scenes = [];
      list.replaceChildren();
      for (let i = 0; i < n; i++) {
        const card = sceneCard(i, task.plan && task.plan[i]);
        // Keep what an earlier card already showed.
        if (old[i]) {
          Object.assign(card, { hasFrame: old[i].hasFrame, progress: old[i].progress });
          if (!old[i].thumbImg.hidden) showThumb(card, old[i].thumbImg.src, old[i].tag.hidden ? null : old[i].tag.textContent);
          setBar(card.bar, old[i].progress, old[i].progress >= 1);
          card.step.textContent = old[i].step.textContent;
        }
        view.scenes.push(card);
        list.append(card.li);
      }
      view.planShown = !!task.plan;
    }
  }

  function showThumb(card, src, tag) {
    card.thumbImg.src = src;
    card.thumbImg.hidden = false;
    card.empty.hidden = true;
    card.tag.hidden = !tag;
    card.tag.textContent = tag || '';
  }

  function setOverall(fraction, status) {
    const done = status === 'completed';
    const f = done ? 1 : fraction;
    setBar($('task-bar'), f, done);
    $('task-pct').textContent = pct(f) + '%';
  }

  function setSceneProgress(i, fraction, label) {
    const card = view && view.scenes[i];
    if (!card) return;
    card.progress = Math.max(card.progress, fraction);
    setBar(card.bar, card.progress, card.progress >= 1);
    if (label !== undefined) card.step.textContent = label;
  }

  function renderMeta(task) {
    const p = task.params;
    const shape = shapeOf(p);
    const f = p.free_form;
    const rows = [
      ['Scenes', f ? `${p.num_scenes} × ${shape.frames} frames · ${+shape.seconds.toFixed(2)} s` : `${p.num_scenes} × ${p.seconds_per_scene} s`],
      ['Size', `${shape.width}×${shape.height} @ ${p.fps} fps`],
      ['Steps', `${p.steps} · guidance ${p.guidance}` + (f ? ` · ${f.scheduler}` : '')],
      f && f.negative_prompt ? ['Negative', f.negative_prompt] : null,
      ['Seed', p.seed_text || String(p.seed)],
      ['Created', new Date(task.created_ms).toLocaleString()],
    ].filter(Boolean);
    if (task.artifact) rows.push(['Video', `${task.artifact.frame_count} frames · ${bytes(task.artifact.video_bytes)}`]);
    if (task.cached) rows.push(['Cache', 'answered from an identical earlier task']);
    const total = Object.values(task.timings_ms || {}).reduce((a, b) => a + b, 0);
    if (FINAL.has(task.status) && total) rows.push(['Work', (total / 1000).toFixed(1) + ' s']);
    $('task-meta').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  }

  function renderTask(task) {
    view.task = task;
    $('task').hidden = false;
    $('task-title').textContent = `Task #${task.id}`;
    badge($('task-status'), task.status);
    $('task-prompt').textContent = task.params.prompt;
    $('task-cancel').hidden = FINAL.has(task.status);
    renderPlan(task);
    renderMeta(task);
    const prog = task.progress || { overall: 0, scenes: [] };
    (prog.scenes || []).forEach((f, i) => setSceneProgress(i, f, f >= 1 ? 'done' : undefined));
    setOverall(Math.max(view.overall || 0, prog.overall || 0), task.status);
    const msg = $('task-message');
    if (task.status === 'failed') {
      msg.textContent = 'Failed: ' + (task.error || 'no reason given');
      msg.className = 'task-message bad';
      msg.hidden = false;
    } else if (task.status === 'cancelled') {
      msg.textContent = 'Cancelled.';
      msg.className = 'task-message';
      msg.hidden = false;
    } else {
      msg.hidden = true;
    }
    for (const li of $('tasks').children) li.classList.toggle('current', li.dataset.id === String(task.id));
  }

  function screenNote(text) {
    $('screen-note').textContent = text || '';
    $('screen-note').hidden = !text;
  }

  // The live image: a preview until frames exist, then a flipbook over the frames stored so far.
  function showLive(src, tag) {
    const img = $('live');
    img.src = src;
    img.hidden = false;
    $('video').hidden = true;
    screenNote('');
    $('screen-tag').hidden = !tag;
    $('screen-tag').textContent = tag || '';
  }

  function onPreview(d) {
    const card = view.scenes[d.scene];
    if (!card || card.hasFrame || typeof d.image !== 'string' || !d.image.startsWith('data:image/')) return;
    showThumb(card, d.image, `preview · step ${d.step}/${d.steps}`);
    view.previews++;
    if (!view.frames.size) showLive(d.image, `preview · scene ${d.scene + 1} · step ${d.step}/${d.steps}`);
  }

  async function frameSrc(index) {
    const v = view;
    if (v.frames.get(index)) return v.frames.get(index);
    const url = v.task.links.frames.replace('{n}', String(index));
    if (!apiKey) {
      v.frames.set(index, url);
      return url;
    }
    const u = await blobUrl(url, v.abort.signal);
    v.urls.push(u);
    if (view === v) v.frames.set(index, u);
    return u;
  }

  function onFrame(d) {
    const scene = Math.floor(d.index / view.shape.frames);
    const card = view.scenes[scene];
    if (!view.frames.has(d.index) && d.index % view.stride === 0) view.frames.set(d.index, null);
    view.frameCount = Math.max(view.frameCount, d.index + 1);
    // The first frame goes on screen at once; the flipbook takes over from there.
    if (!view.shownFrame) {
      view.shownFrame = true;
      const v = view;
      frameSrc(d.index).then((src) => { if (view === v && !v.finished) showLive(src, `live · ${d.index + 1}/${v.total} frames`); }).catch(() => {});
    }
    // The scene's thumbnail: its first frame (then the previews stop).
    if (card && !card.hasFrame) {
      card.hasFrame = true;
      setSceneProgress(scene, 1, 'done');
      const v = view;
      frameSrc(d.index).then((src) => { if (view === v) showThumb(card, src, null); }).catch(() => {});
    }
    startFlipbook();
  }

  function startFlipbook() {
    if (view.flipTimer) return;
    const v = view;
    const fps = Math.max(1, Math.min(30, v.task.params.fps / v.stride));
    let at = 0;
    v.flipTimer = setInterval(async () => {
      if (view !== v || v.busy) return;
      const ready = [...v.frames.keys()].sort((a, b) => a - b);
      if (!ready.length) return;
      at = (at + 1) % ready.length;
      v.busy = true;
      try {
        const src = await frameSrc(ready[at]);
        if (view === v && !v.finished) showLive(src, `live · ${ready.length * v.stride >= v.total ? v.total : ready[ready.length - 1] + 1}/${v.total} frames`);
      } catch (_) { /* a frame that vanished: skip it */ } finally {
        v.busy = false;
      }
    }, 1000 / fps);
  }

  async function showVideo(task) {
    const v = view;
    v.finished = true;
    clearInterval(v.flipTimer);
    const path = task.links.video;
    let src = path;
    if (apiKey) {
      src = await blobUrl(path, v.abort.signal);
      v.urls.push(src);
    }
    if (view !== v) return;
    const video = $('video');
    video.src = src;
    video.hidden = false;
    $('live').hidden = true;
    $('screen-tag').hidden = true;
    screenNote('');
    const a = $('download');
    a.href = src;
    a.download = `reel-${task.id}.mp4`;
    a.hidden = false;
    video.play().catch(() => { /* autoplay refused: the controls are there */ });
    // Scene thumbnails for a task opened after it finished.
    const per = v.shape.frames;
    v.scenes.forEach((card, i) => {
      setSceneProgress(i, 1, 'done');
      if (!card.hasFrame) {
        card.hasFrame = true;
        frameSrc(i * per).then((s) => { if (view === v) showThumb(card, s, null); }).catch(() => {});
      }
    });
  }

  async function follow(v) {
    // Events until `done`; a stream cut short is resumed while the task lives.
    for (let attempt = 0; view === v && !v.finished; attempt++) {
      let done = null;
      try {
        await streamEvents(v.task.links.events, (name, d) => {
          if (view !== v) return;
          if (name === 'status') {
            badge($('task-status'), d.status);
            $('task-cancel').hidden = FINAL.has(d.status);
            if (!view.planShown || FINAL.has(d.status)) refresh(v);
            if (d.status === 'planning') screenNote('planning the scenes…');
            if (d.status === 'generating' && !v.frames.size && !v.previews) screenNote('denoising…');
          } else if (name === 'progress') {
            setSceneProgress(d.scene, d.step / d.steps, `step ${d.step}/${d.steps}`);
            v.overall = Math.max(v.overall || 0, d.overall);
            setOverall(v.overall, v.task.status);
          } else if (name === 'preview') {
            onPreview(d);
          } else if (name === 'frame') {
            onFrame(d);
          } else if (name === 'done') {
            done = d;
          }
        }, v.abort.signal);
      } catch (e) {
        if (e && e.name === 'AbortError') return;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500) {
          showError(e);
          return;
        }
      }
      if (view !== v) return;
      const task = await refresh(v);
      if (done || (task && FINAL.has(task.status))) {
        if (task && task.status === 'completed') {
          try { await showVideo(task); } catch (e) { showError(e); }
        } else {
          v.finished = true;
          clearInterval(v.flipTimer);
          if (!v.frames.size) screenNote(task ? task.status : 'ended');
        }
        refreshTasks();
        refreshStats();
        return;
      }
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * (attempt + 1))));
    }
  }

  async function refresh(v) {
    try {
      const task = await api('GET', v.task.links.self);
      if (view === v) renderTask(task);
      return task;
    } catch (e) {
      if (view === v) showError(e);
      return null;
    }
  }

  async function openTask(id, known) {
    closeView();
    const v = {
      id, task: null, abort: new AbortController(), scenes: [], planShown: false,
      frames: new Map(), urls: [], frameCount: 0, previews: 0, overall: 0,
      flipTimer: null, busy: false, finished: false, stride: 1, total: 0, shownFrame: false,
      shape: null,
    };
    view = v;
    history.replaceState(null, '', `#task-${id}`);
    $('video').removeAttribute('src');
    $('video').hidden = true;
    $('live').hidden = true;
    $('live').removeAttribute('src');
    $('screen-tag').hidden = true;
    $('download').hidden = true;
    $('scenes').replaceChildren(el('li', { class: 'muted empty', text: 'Planning…' }));
    screenNote('waiting for the engine…');
    let task = known;
    try {
      if (!task) task = await api('GET', `/api/tasks/${id}`);
    } catch (e) {
      showError(e);
      if (view === v) { $('task').hidden = true; view = null; }
      return;
    }
    if (view !== v) return;
    v.shape = shapeOf(task.params);
    fitAspect($('screen'), v.shape);
    v.total = task.params.num_scenes * v.shape.frames;
    v.stride = Math.max(1, Math.ceil(v.total / MAX_FLIPBOOK));
    renderTask(task);
    $('task').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    if (task.status === 'completed') {
      try { await showVideo(task); } catch (e) { showError(e); }
    } else if (FINAL.has(task.status)) {
      v.finished = true;
      screenNote(task.status);
    } else {
      follow(v);
    }
  }

  async function cancelTask(id) {
    clearError();
    try {
      const task = await api('DELETE', `/api/tasks/${id}`);
      if (view && view.id === id) renderTask(task);
    } catch (e) {
      showError(e);
    }
    refreshTasks();
  }

  async function deleteTask(id) {
    clearError();
    try {
      await api('DELETE', `/v1/videos/video_${id}`);
      if (view && view.id === id) {
        closeView();
        $('task').hidden = true;
        history.replaceState(null, '', location.pathname);
      }
    } catch (e) {
      showError(e);
    }
    refreshTasks();
    refreshStats();
  }

  // ---------- the task list ----------

  let listCursor = null;
  let listing = false;

  function taskItem(t) {
    const live = !FINAL.has(t.status);
    const del = el('button', { class: 'ghost danger', type: 'button', text: 'Delete', title: 'Delete the task, its video and frames' });
    del.addEventListener('click', () => {
      // Two clicks: the first asks.
      if (del.dataset.armed) { deleteTask(t.id); return; }
      del.dataset.armed = '1';
      del.textContent = 'Sure?';
      setTimeout(() => { delete del.dataset.armed; del.textContent = 'Delete'; }, 3000);
    });
    const bar = el('div', { class: 'bar' }, el('div'));
    setBar(bar, t.status === 'completed' ? 1 : t.progress.overall, t.status === 'completed');
    const sb = el('span', {});
    badge(sb, t.status);
    return el('li', { class: 'task-item' + (view && view.id === t.id ? ' current' : ''), 'data-id': String(t.id) },
      el('div', { class: 't-top' },
        el('span', { class: 't-prompt', title: t.params.prompt, text: t.params.prompt }),
        el('span', { class: 't-time', title: new Date(t.created_ms).toLocaleString(), text: ago(t.created_ms) })),
      el('div', { class: 't-line' },
        el('span', { text: `#${t.id}` }), sb,
        el('span', { class: 't-actions' },
          el('button', { class: 'ghost', type: 'button', text: 'Open', onclick: () => openTask(t.id) }),
          live ? el('button', { class: 'ghost', type: 'button', text: 'Cancel', onclick: () => cancelTask(t.id) }) : null,
          del)),
      live ? bar : null);
  }

  async function refreshTasks(more) {
    if (listing) return;
    listing = true;
    const note = $('tasks-note');
    try {
      const q = more && listCursor !== null ? `?limit=20&cursor=${listCursor}` : '?limit=20';
      const page = await api('GET', '/api/tasks' + q);
      const items = page.tasks.map(taskItem);
      if (more) $('tasks').append(...items);
      else $('tasks').replaceChildren(...items);
      listCursor = page.next_cursor;
      $('tasks-more').hidden = listCursor === null || listCursor === undefined;
      note.hidden = $('tasks').children.length > 0;
      note.textContent = 'No tasks yet.';
    } catch (e) {
      note.hidden = false;
      note.textContent = e.message;
    } finally {
      listing = false;
    }
  }

  // ---------- stats ----------

  async function refreshStats() {
    const note = $('stats-note');
    try {
      const s = await api('GET', '/api/stats');
      $('stat-queue').textContent = `${s.queue.depth} / ${s.queue.bound}`;
      $('stat-cpu').textContent = `${Math.round(s.cpu.process_percent)}% · ${s.cpu.cores} cores`;
      $('stat-mem').textContent = bytes(s.memory.rss_bytes);
      $('stat-mem').title = `machine: ${bytes(s.memory.available_bytes)} free of ${bytes(s.memory.total_bytes)}`;
      $('stat-live').textContent = String(s.live_tasks);
      const chips = STATES.filter((k) => s.tasks && s.tasks[k]).map((k) =>
        el('span', { class: 'chip' }, k.replace('_', ' '), el('b', { text: String(s.tasks[k]) })));
      $('stat-states').replaceChildren(...(chips.length ? chips : [el('span', { class: 'chip', text: 'no tasks' })]));
      note.hidden = true;
    } catch (e) {
      note.hidden = false;
      note.textContent = e.status === 403 ? 'Server figures need an admin key.' : e.message;
    }
  }

  // ---------- start ----------

  document.addEventListener('DOMContentLoaded', () => {
    initKey();
    initForm();
    $('task-cancel').addEventListener('click', () => { if (view) cancelTask(view.id); });
    $('tasks-refresh').addEventListener('click', () => refreshTasks());
    $('tasks-more').addEventListener('click', () => refreshTasks(true));
    refreshTasks();
    refreshStats();
    setInterval(() => { if (!document.hidden) refreshStats(); }, 4000);
    // Not while a delete waits for its second click, nor over pages loaded with More.
    setInterval(() => {
      if (!document.hidden && !document.querySelector('[data-armed]') && $('tasks').children.length <= 20) refreshTasks();
    }, 5000);
    const m = /^#task-(\d+)$/.exec(location.hash);
    if (m) openTask(Number(m[1]));
  });
})();
