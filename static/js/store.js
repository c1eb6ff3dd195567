// Per-source rolling buffers, so switching the viewed source is instant.

export const TIMELINE_SECONDS = 180;
export const SPECTROGRAM_SECONDS = 20;

class SourceBuffer {
  constructor() {
    this.predictions = []; // last TIMELINE_SECONDS of prediction payloads
    this.specTimes = [];
    this.specColumns = [];
    this.specMeta = null; // {n_mels, fmax, db_floor}
    this.last = null;
  }

  addPrediction(p) {
    if (this.predictions.length && p.labels.join() !== this.predictions[0].labels.join()) {
      this.predictions = []; // the model changed: old probabilities are another label set
    }
    this.last = p;
    this.predictions.push(p);
    const cut = p.t - TIMELINE_SECONDS;
    let i = 0;
    while (i < this.predictions.length && this.predictions[i].t < cut) i += 1;
    if (i) this.predictions.splice(0, i);
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
  }

  buffer(id) {
    if (!this.buffers.has(id)) this.buffers.set(id, new SourceBuffer());
    return this.buffers.get(id);
  }

  source(id) { return this.sources.find((s) => s.id === id) || null; }
}
