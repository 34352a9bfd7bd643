// heal view, the page: reads /api/index, fetches frames as protobuf (proto/scene.proto, parsed
// here by protobufjs), hands them to the three.js view, and keeps the URL hash in step
// (#scenario=SPLIT/NAME&frame=TS&view=bev|orbit) so that a link reopens the same scene.

import protobuf from 'protobufjs';
import type { IndexScenario, ViewIndex } from '../scene.ts';
import type { ViewFrame } from './frame.ts';
import { SceneView, AGENT_COLORS, COLORS, FOREGROUND_GRADIENT, HEIGHT_GRADIENT, HEIGHT_RANGE, type Counts } from './render.ts';

/** What tests and scripts read: updated after each frame has been drawn. */
interface Hook {
  ready: boolean;
  scenario: string | null;
  frame: string | null;
  frameIndex: number;
  view: 'bev' | 'orbit';
  error: string | null;
  counts: Counts;
}

declare global {
  interface Window {
    __heal: Hook;
  }
}

// Every id the page asks for is in index.html; T names the element's kind where the page reads more than HTMLElement.
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const hex = (n: number) => `#${n.toString(16).padStart(6, '0')}`;

const hook: Hook = (window.__heal = {
  ready: false,
  scenario: null,
  frame: null,
  frameIndex: -1,
  view: 'bev',
  error: null,
  counts: { points: 0, gtBoxes: 0, predBoxes: 0, tp: 0, fp: 0, miss: 0, agents: 0 },
});

interface State {
  index: ViewIndex | null;
  scenario: IndexScenario | null;
  frameIndex: number;
  view: 'bev' | 'orbit';
  playing: boolean;
  loadToken: number;
  selectedAgent: number | null;
  frame: ViewFrame | null;
  /** Said once with the next frame: a link that pointed at something not here. */
  pendingNote?: string[];
}

const state: State = {
  index: null,
  scenario: null,
  frameIndex: 0,
  view: 'bev',
  playing: false,
  loadToken: 0,
  selectedAgent: null,
  frame: null,
};

let FrameType: protobuf.Type;
let view: SceneView;

async function loadSchema() {
  const text = await (await fetch('/proto/scene.proto')).text();
  FrameType = protobuf.parse(text).root.lookupType('healview.Frame');
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { scenario: p.get('scenario'), frame: p.get('frame'), view: p.get('view') };
}

function writeHash() {
  if (!state.scenario) return;
  const p = new URLSearchParams();
  p.set('scenario', state.scenario.key);
  p.set('frame', state.scenario.frames[state.frameIndex].ts);
  p.set('view', state.view);
  const h = `#${p.toString()}`;
  if (location.hash !== h) history.replaceState(null, '', h);
}

function showError(message: string) {
  hook.error = message;
  const el = $('error');
  el.textContent = message;
  el.hidden = !message;
}

function setStatus(text: string) {
  $('status').textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Frames

async function loadFrame(): Promise<boolean> {
  const token = ++state.loadToken;
  const sc = state.scenario!;
  const fr = sc.frames[state.frameIndex];
  hook.ready = false;
  writeHash();
  $<HTMLInputElement>('timeline').value = String(state.frameIndex);
  $('frame-label').textContent = `${fr.ts}  ·  ${state.frameIndex + 1} / ${sc.frames.length}`;
  setStatus('loading…');
  const t0 = performance.now();
  const res = await fetch(`/api/frame?scenario=${encodeURIComponent(sc.key)}&ts=${encodeURIComponent(fr.ts)}`);
  if (!res.ok) {
    const msg = `frame ${sc.key} ${fr.ts}: ${res.status} ${await res.text()}`;
    if (token === state.loadToken) {
      showError(msg);
      setStatus('error');
    }
    throw new Error(msg);
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  // A newer request (scrubbing fast) makes this one stale: drop it.
  if (token !== state.loadToken) return false;
  const frame = FrameType.decode(bytes) as unknown as ViewFrame;
  state.frame = frame;
  showError('');
  const counts = view.show(frame);
  if (state.selectedAgent === null || !frame.agents.some((a) => a.id === state.selectedAgent)) state.selectedAgent = frame.egoId;
  renderPanel(frame, bytes.length, performance.now() - t0);
  renderCameras();
  // Counts come from the scene graph, after the draw call.
  await new Promise<void>((r) =>
    requestAnimationFrame(() => {
      view.renderNow();
      r();
    }),
  );
  Object.assign(hook, { ready: true, scenario: sc.key, frame: fr.ts, frameIndex: state.frameIndex, view: state.view, counts: { ...counts } });
  setStatus(`${(bytes.length / 1024).toFixed(0)} KiB · ${(performance.now() - t0).toFixed(0)} ms`);
  return true;
}

function goTo(index: number): Promise<boolean> {
  if (index !== state.frameIndex) state.pendingNote = [];
  const n = state.scenario!.frames.length;
  state.frameIndex = Math.max(0, Math.min(n - 1, index));
  return loadFrame().catch((e) => {
    console.error(e);
    return false;
  });
}

function selectScenario(key: string | null, frameTs?: string | null): Promise<boolean> {
  const sc = state.index!.scenarios.find((s) => s.key === key) ?? state.index!.scenarios[0];
  state.scenario = sc;
  $<HTMLSelectElement>('scenario').value = sc.key;
  const tl = $<HTMLInputElement>('timeline');
  tl.max = String(sc.frames.length - 1);
  const marks = $('timeline-marks');
  marks.innerHTML = '';
  sc.frames.forEach((f) => {
    const o = document.createElement('option');
    o.value = String(sc.frames.indexOf(f));
    marks.appendChild(o);
  });
  const i = frameTs ? sc.frames.findIndex((f) => f.ts === frameTs) : 0;
  state.frameIndex = Math.max(0, i);
  // A link to a scenario or frame that is not here opens the nearest thing and says so.
  state.pendingNote = [
    key && key !== sc.key ? `no scenario "${key}" here; showing ${sc.key}` : '',
    frameTs && i < 0 ? `no frame "${frameTs}" in ${sc.key}; showing ${sc.frames[0].ts}` : '',
  ].filter(Boolean);
  state.selectedAgent = null;
  view.resetCameras();
  return goTo(state.frameIndex);
}

// Playback advances at most at 10 Hz (the datasets' rate) and never faster than frames arrive.
async function play() {
  if (state.playing) return;
  state.playing = true;
  $('play').textContent = '❚❚';
  $('play').title = 'pause (space)';
  while (state.playing) {
    const t0 = performance.now();
    const next = state.frameIndex + 1 < state.scenario!.frames.length ? state.frameIndex + 1 : 0;
    await goTo(next);
    const wait = 1000 / Number($<HTMLSelectElement>('speed').value) - (performance.now() - t0);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

function pause() {
  state.playing = false;
  $('play').textContent = '▶';
  $('play').title = 'play (space)';
}

function setView(v: string) {
  state.view = v === 'orbit' ? 'orbit' : 'bev';
  view.setView(state.view);
  hook.view = state.view;
  for (const b of document.querySelectorAll<HTMLElement>('[data-view]')) b.classList.toggle('active', b.dataset.view === state.view);
  writeHash();
}

// ---------------------------------------------------------------------------------------------
// Panel

function renderPanel(frame: ViewFrame, bytes: number, ms: number) {
  const c = view.counts;
  $('counts').innerHTML = [
    ['points', c.points.toLocaleString()],
    ['GT boxes', c.gtBoxes],
    ['predictions', c.predBoxes],
    ['true positives', c.tp],
    ['false positives', c.fp],
    ['missed', c.miss],
  ]
    .map(([k, v]) => `<div class="kv"><span>${k}</span><b>${v}</b></div>`)
    .join('');
  const prec = c.predBoxes ? c.tp / c.predBoxes : NaN,
    rec = c.gtBoxes ? (c.gtBoxes - c.miss) / c.gtBoxes : NaN;
  $('pr').textContent =
    `precision ${Number.isNaN(prec) ? '–' : prec.toFixed(2)} · recall ${Number.isNaN(rec) ? '–' : rec.toFixed(2)} @ IoU ${frame.iouThreshold || 0.5}`;
  $('source').textContent = frame.detectionsFrom === 'run' ? 'detections from the run (frames.jsonl)' : `detections computed here (${frame.provider || '?'})`;

  const rows = frame.agents
    .map((a, i) => {
      const status = a.ego ? 'ego' : a.used ? 'fused' : a.skipped ? 'not fused' : 'not fused';
      const title = a.skipped ? ` title="${escapeHtml(a.skipped)}"` : '';
      return `<tr data-agent="${a.id}" class="${a.id === state.selectedAgent ? 'selected' : ''}"${title}>
      <td><span class="swatch" style="background:${AGENT_COLORS[i % AGENT_COLORS.length]}"></span>${a.id}</td>
      <td>${a.type || '–'}</td><td>${a.kind === 'rsu' ? 'RSU' : 'car'}${a.modality === 'camera' ? ' · cam' : ''}</td>
      <td class="${a.ego || a.used ? 'ok' : 'off'}">${status}</td>
      <td class="num">${a.ego ? '–' : `${a.distance.toFixed(0)} m`}</td>
      <td class="num">${a.pointsTotal ? `${(a.pointsTotal / 1000).toFixed(0)}k` : '–'}</td></tr>`;
    })
    .join('');
  $('agents').innerHTML = `<tr><th>agent</th><th>type</th><th>kind</th><th>link</th><th>dist</th><th>pts</th></tr>${rows}`;
  for (const tr of $('agents').querySelectorAll<HTMLElement>('tr[data-agent]')) {
    tr.addEventListener('click', () => {
      state.selectedAgent = Number(tr.dataset.agent);
      for (const r of $('agents').querySelectorAll('tr')) r.classList.toggle('selected', r === tr);
      renderCameras();
      view.focusOn(state.selectedAgent);
    });
  }

  const fg = $<HTMLSelectElement>('fg-agent');
  const levels = frame.foreground;
  const cur = fg.value;
  fg.innerHTML = '<option value="max">max over agents</option>' + (levels[0]?.agents ?? []).map((id) => `<option value="${id}">agent ${id}</option>`).join('');
  fg.value = [...fg.options].some((o) => o.value === cur) ? cur : 'max';
  const lvSel = $<HTMLSelectElement>('fg-level');
  const curL = lvSel.value;
  lvSel.innerHTML = levels.map((l) => `<option value="${l.level}">level ${l.level} · ${l.width}×${l.height}</option>`).join('') || '<option>none</option>';
  if ([...lvSel.options].some((o) => o.value === curL)) lvSel.value = curL;

  const notes = [...(state.pendingNote ?? []), ...state.index!.notes, ...frame.notes];
  for (const a of frame.agents) if (a.skipped && !a.ego) notes.push(`agent ${a.id}: ${a.skipped}`);
  $('notes').innerHTML = notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('');
  $('notes-box').hidden = notes.length === 0;
  $('frame-meta').textContent = `${(bytes / 1024).toFixed(0)} KiB protobuf · built in ${frame.buildMs.toFixed(0)} ms · loaded in ${ms.toFixed(0)} ms`;
}

function renderCameras() {
  const strip = $('cameras');
  const frame = state.frame;
  if (!frame) return;
  const a = frame.agents.find((x) => x.id === state.selectedAgent);
  const sc = state.scenario!.key,
    ts = state.scenario!.frames[state.frameIndex].ts;
  $('cameras-title').textContent = a ? `cameras · agent ${a.id}${a.ego ? ' (ego)' : ''} · ${a.type}` : 'cameras';
  if (!a?.cameras.length) {
    strip.innerHTML = '<div class="empty">this agent has no cameras</div>';
    return;
  }
  strip.innerHTML = a.cameras
    .map((c) => {
      const src = `/api/camera?scenario=${encodeURIComponent(sc)}&ts=${encodeURIComponent(ts)}&agent=${a.id}&camera=${encodeURIComponent(c.name)}`;
      return `<figure><img alt="${c.name}" src="${src}" loading="eager"><figcaption>${c.name}</figcaption></figure>`;
    })
    .join('');
  for (const img of strip.querySelectorAll('img')) img.addEventListener('click', () => openLightbox(img.src, img.alt));
}

const STATUS_TEXT: Record<number, string> = { 1: 'true positive', 2: 'false positive', 3: 'matched', 4: 'missed' };

function showTooltip(clientX: number, clientY: number) {
  const tip = $('tooltip');
  const hit = view.pick(clientX, clientY);
  if (!hit) {
    tip.hidden = true;
    return;
  }
  const [x, y, z, h, w, l, yaw] = hit.box.box;
  const head =
    hit.kind === 'prediction'
      ? `prediction · score ${hit.box.score.toFixed(3)} · ${STATUS_TEXT[hit.box.status] ?? '?'}`
      : `GT · ${STATUS_TEXT[hit.box.status] ?? '?'}`;
  tip.innerHTML = `<b>${head}</b><br>x ${x.toFixed(1)}  y ${y.toFixed(1)}  z ${z.toFixed(1)} m<br>l ${l.toFixed(2)}  w ${w.toFixed(2)}  h ${h.toFixed(2)} m · yaw ${((yaw * 180) / Math.PI).toFixed(0)}°`;
  const r = $('viewport').getBoundingClientRect();
  tip.style.left = `${clientX - r.left + 14}px`;
  tip.style.top = `${clientY - r.top + 14}px`;
  tip.hidden = false;
}

function openLightbox(src: string, alt: string) {
  $<HTMLImageElement>('lightbox-img').src = src;
  $<HTMLImageElement>('lightbox-img').alt = alt;
  $('lightbox').hidden = false;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function escapeHtml(s: unknown) {
  return String(s).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

function buildLegend() {
  const item = (color: string, label: string, cls = 'line') => `<div class="legend-item"><span class="${cls}" style="--c:${color}"></span>${label}</div>`;
  $('legend').innerHTML = [
    item(hex(COLORS.tp), 'prediction, true positive'),
    item(hex(COLORS.fp), 'prediction, false positive'),
    item(hex(COLORS.missed), 'GT, missed'),
    item(hex(COLORS.matched), 'GT, matched'),
    item(hex(COLORS.link), 'link, fused'),
    item(hex(COLORS.linkOff), 'link, not fused · 70 m range', 'dash'),
    item(`linear-gradient(90deg, ${FOREGROUND_GRADIENT})`, 'foreground probability 0 → 1', 'ramp'),
  ].join('');
  $('height-bar').style.background = `linear-gradient(90deg, ${HEIGHT_GRADIENT})`;
  $('height-min').textContent = `${HEIGHT_RANGE[0]} m`;
  $('height-max').textContent = `${HEIGHT_RANGE[1]} m`;
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  const scenario = $<HTMLSelectElement>('scenario');
  scenario.addEventListener('change', () => {
    pause();
    selectScenario(scenario.value);
  });
  const timeline = $<HTMLInputElement>('timeline');
  timeline.addEventListener('input', () => goTo(Number(timeline.value)));
  $('play').addEventListener('click', () => (state.playing ? pause() : play()));
  $('prev').addEventListener('click', () => {
    pause();
    goTo(state.frameIndex - 1);
  });
  $('next').addEventListener('click', () => {
    pause();
    goTo(state.frameIndex + 1);
  });
  for (const b of document.querySelectorAll<HTMLElement>('[data-view]')) b.addEventListener('click', () => setView(b.dataset.view ?? 'bev'));
  $('reset-camera').addEventListener('click', () => view.resetCameras());
  for (const cb of document.querySelectorAll<HTMLInputElement>('[data-layer]')) {
    cb.addEventListener('change', () => {
      const layer = cb.dataset.layer ?? '';
      if (layer === 'cameras') $('camera-strip').hidden = !cb.checked;
      else view.setLayerVisible(layer, cb.checked);
      if (layer === 'agents') view.setLayerVisible('labels', cb.checked);
    });
  }
  const colorMode = $<HTMLSelectElement>('color-mode');
  colorMode.addEventListener('change', () => {
    view.setPointColorMode(colorMode.value);
    $('height-scale').hidden = colorMode.value !== 'height';
  });
  const fg = () => view.setForeground(Number($<HTMLSelectElement>('fg-level').value), $<HTMLSelectElement>('fg-agent').value);
  $('fg-level').addEventListener('change', fg);
  $('fg-agent').addEventListener('change', fg);
  $('lightbox').addEventListener('click', () => {
    $('lightbox').hidden = true;
  });
  let hover = 0;
  $('viewport').addEventListener('pointermove', (e) => {
    if (hover || e.buttons) return;
    hover = requestAnimationFrame(() => {
      hover = 0;
      showTooltip(e.clientX, e.clientY);
    });
  });
  $('viewport').addEventListener('pointerleave', () => {
    $('tooltip').hidden = true;
  });
  window.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== 'range' && e.target.type !== 'checkbox') return;
    if (e.target instanceof HTMLSelectElement) return;
    if (e.code === 'Space') {
      e.preventDefault();
      state.playing ? pause() : play();
    } else if (e.code === 'ArrowRight') {
      e.preventDefault();
      pause();
      goTo(state.frameIndex + 1);
    } else if (e.code === 'ArrowLeft') {
      e.preventDefault();
      pause();
      goTo(state.frameIndex - 1);
    } else if (e.key === 'b') setView('bev');
    else if (e.key === 'o') setView('orbit');
    else if (e.key === 'Escape') $('lightbox').hidden = true;
  });
  // A pasted link or the back button: go where the hash says.
  window.addEventListener('hashchange', () => {
    const h = readHash();
    if (h.view && h.view !== state.view) setView(h.view);
    if (!state.scenario) return;
    if (h.scenario && h.scenario !== state.scenario.key) selectScenario(h.scenario, h.frame);
    else if (h.frame && h.frame !== state.scenario.frames[state.frameIndex].ts) {
      const i = state.scenario.frames.findIndex((f) => f.ts === h.frame);
      if (i >= 0) goTo(i);
    }
  });
}

async function main() {
  view = new SceneView($('viewport'));
  buildLegend();
  wire();
  try {
    await loadSchema();
    const res = await fetch('/api/index');
    if (!res.ok) throw new Error(`/api/index: ${res.status} ${await res.text()}`);
    state.index = (await res.json()) as ViewIndex;
  } catch (e) {
    showError(String((e as Error).message ?? e));
    return;
  }
  const ix = state.index;
  $('scenario').innerHTML = ix.scenarios
    .map((s) => `<option value="${s.key}">${s.key} · ${s.frames.length} frames · ${s.agents.length} agents</option>`)
    .join('');
  $('meta').textContent = `${ix.source === 'run' ? 'run' : 'dataset'} · ${ix.format} · profile ${ix.profile} · types ${ix.types.join(',')}`;
  $('meta').title = `${ix.input}\ndata: ${ix.data}\nweights: ${ix.weights ?? 'seeded random'}`;
  $('badge-random').hidden = !ix.randomWeights;
  const h = readHash();
  setView(h.view ?? 'bev');
  await selectScenario(h.scenario ?? ix.scenarios[0].key, h.frame);
}

main();
