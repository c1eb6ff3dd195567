// Dashboard entry point: one Socket.IO connection feeds every panel.

import { Store } from './store.js';
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

const ACK_TIMEOUT_MS = 15000;

const store = new Store();
const toast = createToasts(document.getElementById('toasts'));
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

const now = createNowPlaying();
const probs = createProbsChart(document.getElementById('probs-plot'));
const timeline = createTimeline(document.getElementById('timeline-plot'));
const spectrogram = createSpectrogram(document.getElementById('spec-plot'));
const tags = createTags(document.getElementById('tags-list'));
const counters = createCounters();
const segments = createSegments(document.getElementById('segment-list'));

const models = createModelSelect({
  toast,
  onSelect: async (name) => !!(await request('select_model', { name }, 'Model')),
});

const picker = createPicker({
  toast,
  onStart: async (spec) => {
    const res = await request('start_source', spec, 'Start');
    if (res) view(res.id);
  },
  onStop: () => stop(store.viewing),
});

const sourceList = createSourceList({ onSelect: (id) => view(id), onStop: (id) => stop(id) });

async function stop(id) {
  if (id) await request('stop_source', { id }, 'Stop');
}

function hopOf(id) {
  const s = store.source(id);
  return (s && s.hop) || 1;
}

// Redraw every panel from the viewed source's buffers.
function view(id) {
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
    probs.reset((store.model && store.model.labels) || []);
    tags.reset();
    counters.reset(source);
  }
  timeline.draw(buf.predictions, hopOf(id));
  segments.update(buf.predictions);
  spectrogram.reset(buf);
  sourceList.render(store.sources, store.viewing);
  picker.setStoppable(isLive(source));
}

function pickDefaultView() {
  const live = store.sources.filter(isLive);
  if (live.length) return live[live.length - 1].id;
  return store.sources.length ? store.sources[store.sources.length - 1].id : null;
}

const conn = document.getElementById('conn');
function setConn(on, text) {
  conn.className = `pill ${on ? 'pill-on' : 'pill-off'}`;
  conn.querySelector('span').textContent = text;
}

socket.on('connect', () => setConn(true, 'live'));
socket.on('disconnect', () => setConn(false, 'disconnected'));
socket.on('connect_error', () => setConn(false, 'reconnecting…'));

socket.on('sources', (payload) => {
  store.sources = payload.sources || [];
  store.model = payload.model || null;
  models.model(store.model);
  const known = store.viewing && store.source(store.viewing);
  if (!known) {
    const next = pickDefaultView();
    if (next !== store.viewing || next === null) { view(next); return; }
  }
  sourceList.render(store.sources, store.viewing);
  const source = store.source(store.viewing);
  picker.setStoppable(isLive(source));
  counters.source(source);
});

socket.on('prediction', (p) => {
  const buf = store.buffer(p.source);
  buf.addPrediction(p);
  if (store.viewing === null) { view(p.source); return; }
  const source = store.source(p.source);
  if (source && p.counters) { // keep the list's counts live between `sources` events
    Object.assign(source, { windows: p.counters.windows, skipped: p.counters.skipped, overflows: p.counters.overflows });
    sourceList.render(store.sources, store.viewing);
  }
  if (p.source !== store.viewing) return;
  now.update(p, source, buf.predictions);
  probs.update(p);
  tags.update(p);
  counters.update(p);
  timeline.append(p, buf.predictions, hopOf(p.source));
  segments.update(buf.predictions);
});

socket.on('spectrogram', (s) => {
  const buf = store.buffer(s.source);
  buf.addSpectrogram(s);
  if (s.source === store.viewing) spectrogram.schedule(buf);
});

socket.on('notice', (n) => toast.notice(n));

view(null);
models.load();

// Handle for debugging from the console and for the browser tests.
window.genreMonitor = { store, socket };
