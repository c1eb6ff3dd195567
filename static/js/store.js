// Per-source rolling buffers, so switching the viewed source is instant.

export const TIMELINE_SECONDS = 180;
export const SPECTROGRAM_SECONDS = 20;
const MAX_SEGMENTS = 200;

// Every label of ``preds``: the newest window's in its model's order, then those only older
// windows have (recorded under another model), newest first.
export function labelsOf(preds) {
  const out = [];
  for (let i = preds.length - 1; i >= 0; i -= 1) {
    for (const l of preds[i].labels) if (!out.includes(l)) out.push(l);
  }
  return out;
}

class SourceBuffer {
  constructor() {
    this.predictions = []; // last TIMELINE_SECONDS (wall clock) of prediction payloads
    this.specTimes = [];
    this.specColumns = [];
    this.specMeta = null; // {n_mels, fmax, db_floor}
    this.last = null;
    this.segments = new Map(); // start_wall → segment, from /api/segments, `segment` events and predictions
    this.sessionStart = null; // wall time of stream time 0 of the current run
    this.historyLoaded = false;
  }

  // Windows of different models (label sets) sit side by side: each carries its own labels.
  addPrediction(p) {
    this.last = p;
    this.sessionStart = p.wall - p.t;
    this.predictions.push(p);
    this.trim(p.wall);
    if (p.segment) this.addSegment(p.segment);
  }

  // History rows older than the first live window go in front (a reload or restart shows the past).
  addHistory(preds) {
    const first = this.predictions.length ? this.predictions[0].wall : Infinity;
    const older = preds.filter((p) => p.wall < first - 0.01);
    this.predictions = older.concat(this.predictions);
    if (!this.last && older.length) this.last = older[older.length - 1];
    this.trim(this.predictions.length ? this.predictions[this.predictions.length - 1].wall : 0);
  }

  trim(end) {
    const cut = end - TIMELINE_SECONDS;
    let i = 0;
    while (i < this.predictions.length && this.predictions[i].wall < cut) i += 1;
    if (i) this.predictions.splice(0, i);
  }

  addSegment(seg) {
    const key = seg.start_wall.toFixed(2);
    const old = this.segments.get(key);
    // A closed segment is final; an open one only grows.
    if (old && !old.open && seg.open) return;
    this.segments.set(key, { ...old, ...seg });
    // A source has one open segment at most: any later segment ends every earlier open one,
    // even when this page missed that segment's `closed` event (it loaded just then).
    for (const s of this.segments.values()) {
      if (s.open && s.start_wall < seg.start_wall) {
        s.open = false;
        s.end_wall = seg.start_wall;
      }
    }
    if (this.segments.size > MAX_SEGMENTS) {
      const keys = [...this.segments.keys()].sort((a, b) => a - b);
      keys.slice(0, this.segments.size - MAX_SEGMENTS).forEach((k) => this.segments.delete(k));
    }
  }

  segmentList() { // oldest first
    return [...this.segments.values()].sort((a, b) => a.start_wall - b.start_wall);
  }

  addSpectrogram(s) {
    this.specMeta = { n_mels: s.n_mels, fmax: s.fmax, db_floor: s.db_floor };
    const lastT = this.specTimes.length ? this.specTimes[this.specTimes.length - 1] : -Infinity;
    if (s.times.length && s.times[0] < lastT - 1) { // stream restarted (e.g. looped source re-created)
      this.specTimes = [];
      this.specColumns = [];
    }
    for (let k = 0; k < s.times.length; k += 1) {
      this.specTimes.push(s.times[k]);
      this.specColumns.push(s.columns[k]);
    }
    const end = this.specTimes[this.specTimes.length - 1];
    let i = 0;
    while (i < this.specTimes.length && this.specTimes[i] < end - SPECTROGRAM_SECONDS) i += 1;
    if (i) { this.specTimes.splice(0, i); this.specColumns.splice(0, i); }
  }
}

export class Store {
  constructor() {
    this.buffers = new Map();
    this.sources = [];
    this.model = null;
    this.viewing = null;
    this.mode = 'detail'; // or 'grid' (side by side)
    this.alerts = []; // newest last
  }

  buffer(id) {
    if (!this.buffers.has(id)) this.buffers.set(id, new SourceBuffer());
    return this.buffers.get(id);
  }

  source(id) { return this.sources.find((s) => s.id === id) || null; }
}
