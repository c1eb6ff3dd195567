// Window / skip / overflow counters, stream time and end-to-end latency.

import { fmtTime } from './theme.js';

export function createCounters() {
  const el = (id) => document.getElementById(id);
  const windows = el('c-windows');
  const skipped = el('c-skipped');
  const overflows = el('c-overflows');
  const time = el('c-time');
  const latency = el('c-latency');
  const rate = el('c-rate');

  function setNum(node, v) {
    node.textContent = String(v ?? 0);
    node.classList.toggle('warn', (v ?? 0) > 0 && node !== windows);
  }

  return {
    reset(source) {
      setNum(windows, source ? source.windows : 0);
      setNum(skipped, source ? source.skipped : 0);
      setNum(overflows, source ? source.overflows : 0);
      time.textContent = '0:00';
      latency.textContent = '–';
      rate.textContent = source && source.samplerate ? `${(source.samplerate / 1000).toFixed(1)}k` : '–';
    },
    update(p) {
      const c = p.counters || {};
      setNum(windows, c.windows);
      setNum(skipped, c.skipped);
      setNum(overflows, c.overflows);
      time.textContent = fmtTime(p.t);
      const lag = Date.now() / 1000 - p.wall;
      latency.textContent = Number.isFinite(lag) ? `${Math.max(0, lag * 1000).toFixed(0)} ms` : '–';
    },
    source(source) {
      if (source && source.samplerate) rate.textContent = `${(source.samplerate / 1000).toFixed(1)}k`;
    },
  };
}
