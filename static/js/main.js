// Dashboard entry point: one Socket.IO connection feeds every panel.

import * as api from './api.js';
import { Store, TIMELINE_SECONDS } from './store.js';
import { fromEvent, fromHistory } from './windows.js';
import { createToasts } from './toasts.js';
import { createPicker } from './picker.js';
import { createSourceList, isLive } from './sourceList.js';
import { createModelSelect } from './models.js';
import { createNowPlaying } from './nowPlaying.js';
import { createProbsChart } from './probsChart.js';
import { createTimeline } from './timeline.js';
import { createSpectrogram } from './spectrogram.js';
import { createTags } from './tags.js';
import { createCounters } from './counters.js';
import { createSegments } from './segments.js';
import { createSummary } from './summary.js';
import { createAlerts } from './alerts.js';
import { createGrid } from './grid.js';
import { setContentLabels } from './theme.js';

const ACK_TIMEOUT_MS = 15000;
const $ = (id) => document.getElementById(id);

const store = new Store();
const toast = createToasts($('toasts'));
// An access link (?token=…) has set the session cookie by now: keep the token out of the address bar and history.
if (new URLSearchParams(location.search).has('token')) history.replaceState(null, '', location.pathname + location.hash);
const socket = io({ transports: ['websocket', 'polling'] });

// Emit with an ack; failures become toasts and resolve to null.
async function request(event, payload, title) {
  try {
    const res = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
    if (res && res.ok) return res;
    toast.show((res && res.error) || `${event} failed`, { level: 'error', title });
  } catch {
    toast.show(`No answer from the server for ${event}.`, { level: 'error', title });
  }
  return null;
}

const labels = () => (store.model && store.model.labels) || [];
const context = () => ({ source: store.viewing, labels: labels(), model: store.model && store.model.name,
  buffer: store.viewing ? store.buffer(store.viewing) : null });

const now = createNowPlaying();
const probs = createProbsChart($('probs-plot'));
const timeline = createTimeline($('timeline-plot'));
const spectrogram = createSpectrogram($('spec-plot'));
const tags = createTags($('tags-list'));
const counters = createCounters();
const segments = createSegments($('segment-list'), $('segment-empty'));
const summary = createSummary({ div: $('summary-plot'), rangeSelect: $('summary-range'), total: $('summary-total'),
  exports: $('exports'), getContext: context });
const alerts = createAlerts({
  list: $('alert-list'), empty: $('alert-empty'), firingBadge: $('alert-firing'), editButton: $('rules-btn'),
  dialog: $('rules-dialog'), toast, getContext: context,
  onSave: async (source, rules) => {
    const res = await request('set_rules', { source, rules }, 'Rules');
    if (res) toast.show(rules.length ? `${rules.length} rule${rules.length > 1 ? 's' : ''} active for ${source}.`
      : `No alert rules for ${source}.`, { level: 'info', title: 'Rules' });
    const missing = (res && res.missing_genres) || [];
    if (missing.length) {
      toast.show(`${missing.join(', ')}: not a genre of the current model, so never on top; kept in the rule.`,
        { level: 'warning', title: 'Rules' });
    }
    return !!res;
  },
});
const grid = createGrid({ root: $('grid-view'), onOpen: (id) => { setMode('detail'); view(id); } });

const models = createModelSelect({
  toast,
  onSelect: async (name) => !!(await request('select_model', { name }, 'Model')),
});

const picker = createPicker({
  toast,
  onStart: async (spec) => {
    const res = await request('start_source', spec, 'Start');
    if (res) { setMode('detail'); view(res.id); }
  },
  onStop: () => stop(store.viewing),
});

const sourceList = createSourceList({
  onSelect: (id) => { setMode('detail'); view(id); },
  onStop: (id) => stop(id),
  onRestart: (id) => request('restart_source', { id }, 'Restart'),
});

async function stop(id) {
  if (id) await request('stop_source', { id }, 'Stop');
}

// Receive only what is on screen: the viewed source, or every source side by side.
function syncWatch() {
  const known = new Set(store.sources.map((s) => s.id));
  const wanted = store.mode === 'grid' ? 'all' : (store.viewing && known.has(store.viewing) ? [store.viewing] : 'all');
  const key = JSON.stringify(wanted);
  if (key === syncWatch.last || !socket.connected) return;
  syncWatch.last = key;
  request('watch', { sources: wanted }, 'Watch');
}

function drawTimeline(id) {
  const buf = store.buffer(id);
  timeline.draw(buf.predictions, buf.segmentList());
  segments.update(buf.segmentList());
}

// Fill a source's buffers from the history (timeline + segments), once per page load.
async function loadHistory(id) {
  const buf = store.buffer(id);
  if (buf.historyLoaded) return;
  buf.historyLoaded = true;
  const to = Date.now() / 1000;
  try {
    const [windows, segs] = await Promise.all([
      api.getHistory(id, to - TIMELINE_SECONDS, to), api.getSegments(id, to - 24 * 3600, to)]);
    buf.addHistory((windows || []).map((w) => fromHistory(w, id)));
    (segs || []).forEach((s) => buf.addSegment(s));
  } catch (err) {
    toast.show(err.message, { level: 'warning', title: 'History' });
  }
  if (store.viewing === id) {
    if (!buf.last && buf.predictions.length) buf.last = buf.predictions.at(-1);
    drawTimeline(id);
  }
}

// Redraw every panel from the viewed source's buffers.
function view(id) {
  const changed = store.viewing !== id;
  store.viewing = id;
  const source = store.source(id);
  const buf = store.buffer(id);
  if (buf.last) {
    now.update(buf.last, source, buf.predictions);
    probs.update(buf.last);
    tags.update(buf.last);
    counters.reset(source);
    counters.update(buf.last);
  } else {
    now.reset(source);
    probs.reset(labels());
    tags.reset();
    counters.reset(source);
  }
  drawTimeline(id);
  spectrogram.reset(buf);
  sourceList.render(store.sources, store.viewing);
  picker.setStoppable(isLive(source));
  $('status-source').textContent = source ? `${source.label} · ${source.kind}` : '';
  syncWatch();
  if (id && changed) {
    loadHistory(id);
    alerts.load(id);
    summary.refresh();
  }
}

function setMode(mode) {
  store.mode = mode;
  $('mode-detail').classList.toggle('active', mode === 'detail');
  $('mode-grid').classList.toggle('active', mode === 'grid');
  $('detail-view').hidden = mode !== 'detail';
  $('grid-view').hidden = mode !== 'grid';
  document.body.dataset.mode = mode;
  if (mode === 'grid') grid.render(store.sources, (id) => store.buffer(id));
  else window.dispatchEvent(new Event('resize')); // plots were laid out while hidden
  syncWatch();
}
$('mode-detail').addEventListener('click', () => setMode('detail'));
$('mode-grid').addEventListener('click', () => setMode('grid'));
$('raw-toggle').addEventListener('change', (e) => timeline.setRaw(e.target.checked));

function pickDefaultView() {
  const live = store.sources.filter(isLive);
  if (live.length) return live[live.length - 1].id;
  return store.sources.length ? store.sources[store.sources.length - 1].id : null;
}

const conn = $('conn');
function setConn(on, text) {
  conn.className = `pill ${on ? 'pill-on' : 'pill-off'}`;
  conn.querySelector('span').textContent = text;
}

socket.on('connect', () => { setConn(true, 'live'); syncWatch.last = null; });
socket.on('disconnect', () => setConn(false, 'disconnected'));
socket.on('connect_error', (err) => {
  // A refusal (no or wrong access token, foreign origin) is final; anything else is retried.
  const refused = /unauthori[sz]ed|token|origin|host/i.test((err && err.message) || '');
  setConn(false, refused ? 'access refused' : 'reconnecting…');
  if (refused) toast.show(`${err.message}. Open the link printed when the server started.`, { level: 'error', title: 'Connection' });
});

// The alert webhook's counts (absent without a webhook); refreshed a moment after each alert.
const webhookPill = document.getElementById('webhook-status');
let webhookSeen = 0;
function showWebhook(w) {
  webhookPill.hidden = !w;
  if (!w) return;
  const bad = w.failed + w.dropped;
  webhookPill.className = `pill ${bad ? 'pill-off' : 'pill-on'}`;
  webhookPill.querySelector('span').textContent = `webhook: ${w.sent} sent · ${w.failed} failed · ${w.dropped} dropped`;
  webhookPill.title = `Alert webhook ${w.url}${w.last_error ? ` — last error: ${w.last_error}` : ''}`;
  if (bad > webhookSeen) {
    toast.show(`Alerts could not be delivered to the webhook ${w.url}: ${w.last_error || 'its queue is full'}.`,
      { level: 'error', title: 'Webhook' });
  }
  webhookSeen = bad;
}
let webhookTimer = null;
function refreshWebhookSoon() {
  if (webhookPill.hidden || webhookTimer) return;
  webhookTimer = setTimeout(() => {
    webhookTimer = null;
    api.getSources().then((p) => showWebhook(p.webhook)).catch(() => {});
  }, 12000);
}

let historyResetShown = false;
socket.on('sources', (payload) => {
  showWebhook(payload.webhook);
  const reset = payload.history && payload.history.reset;
  if (reset && !historyResetShown) {
    historyResetShown = true;
    toast.show(`The history database was damaged and a fresh one was started; the old file is kept as ${reset.damaged}.`,
      { level: 'error', title: 'History reset', timeout: 60000 });
  }
  store.sources = payload.sources || [];
  store.model = payload.model || null;
  setContentLabels(store.model && store.model.no_genre);
  models.model(store.model);
  if (store.mode === 'grid') grid.render(store.sources, (id) => store.buffer(id));
  const known = store.viewing && store.source(store.viewing);
  if (!known) {
    const next = pickDefaultView();
    if (next !== store.viewing || next === null) { view(next); return; }
  }
  sourceList.render(store.sources, store.viewing);
  const source = store.source(store.viewing);
  picker.setStoppable(isLive(source));
  counters.source(source);
  syncWatch();
});

socket.on('prediction', (event) => {
  const p = fromEvent(event);
  const buf = store.buffer(p.source);
  buf.addPrediction(p);
  if (store.mode === 'grid') grid.prediction(p);
  if (store.viewing === null) { view(p.source); return; }
  const source = store.source(p.source);
  if (source && p.counters) { // keep the list's counts live between `sources` events
    Object.assign(source, { windows: p.counters.windows, skipped: p.counters.skipped, overflows: p.counters.overflows });
    sourceList.render(store.sources, store.viewing);
  }
  if (p.source !== store.viewing || store.mode !== 'detail') return;
  now.update(p, source, buf.predictions);
  probs.update(p);
  tags.update(p);
  counters.update(p);
  drawTimeline(p.source);
});

socket.on('segment', (s) => {
  store.buffer(s.source).addSegment(s);
  if (s.source === store.viewing) {
    drawTimeline(s.source);
    summary.poke();
  }
});

socket.on('alert', (a) => {
  alerts.add(a);
  refreshWebhookSoon();
  if (a.state === 'firing') toast.show(a.message, { level: 'warning', title: `alert · ${a.source}` });
});

socket.on('spectrogram', (s) => {
  const buf = store.buffer(s.source);
  buf.addSpectrogram(s);
  if (s.source === store.viewing && store.mode === 'detail') spectrogram.schedule(buf);
});

socket.on('notice', (n) => toast.notice(n));

view(null);
models.load();
summary.refresh();

// Handle for debugging from the console and for the browser tests.
window.genreMonitor = { store, socket, setMode, view };
