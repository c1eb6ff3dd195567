// Share of each genre (and of talk, silence, noise) for the viewed source over a range (session / 1 h / 24 h), from /api/summary,
// plus export links for the same range. Refreshed on segment events, at most every 10 s, else each minute.

import * as api from './api.js';
import { PLOT_CONFIG, baseLayout, colorOf, fmtDuration, isContent } from './theme.js';

const MIN_GAP_MS = 10_000;
const PERIOD_MS = 60_000;

export function createSummary({ div, rangeSelect, total, exports, getContext }) {
  let lastFetch = 0;
  let timer = null;
  let inFlight = false;

  function range() {
    const { buffer } = getContext();
    const to = Date.now() / 1000;
    const v = rangeSelect.value;
    if (v === 'session') return [buffer && buffer.sessionStart ? buffer.sessionStart : to - 3600, to];
    return [to - Number(v), to];
  }

  function draw(summary) {
    // Genres, then the time that was talk, silence or noise (the server's `content`, less music).
    const genres = Object.entries((summary && summary.genres) || {}).filter(([, s]) => s > 0)
      .sort((a, b) => b[1] - a[1]);
    const other = Object.entries((summary && summary.content) || {})
      .filter(([c, s]) => s > 0 && isContent(c))
      .sort((a, b) => b[1] - a[1]);
    const entries = [...genres, ...other];
    const sum = entries.reduce((acc, [, s]) => acc + s, 0);
    total.textContent = sum ? fmtDuration(sum) : 'no data yet';
    const trace = {
      type: 'pie', hole: 0.58, sort: false, direction: 'clockwise',
      labels: entries.map(([g]) => g), values: entries.map(([, s]) => s),
      marker: { colors: entries.map(([g]) => colorOf(g)), line: { color: '#131824', width: 2 } },
      textinfo: 'percent', textposition: 'inside', insidetextorientation: 'horizontal',
      textfont: { size: 11, color: '#0b0e14' },
      hovertemplate: '%{label}: %{percent} (%{value:.0f} s)<extra></extra>',
    };
    Plotly.react(div, entries.length ? [trace] : [], baseLayout({
      margin: { l: 4, r: 4, t: 4, b: 4 }, showlegend: true,
      legend: { x: 1, xanchor: 'left', y: 0.5, font: { size: 11 }, bgcolor: 'rgba(0,0,0,0)' },
      annotations: entries.length ? [] : [{ text: 'no history yet', showarrow: false, font: { color: '#8a96ad' } }],
    }), PLOT_CONFIG);
  }

  function updateExports(source, [from, to]) {
    for (const a of exports.querySelectorAll('a[data-what]')) {
      if (source) a.href = api.exportUrl(a.dataset.what, a.dataset.ext, source, from, to);
      else a.removeAttribute('href');
    }
  }

  async function refresh() {
    const { source } = getContext();
    lastFetch = Date.now();
    const r = range();
    updateExports(source, r);
    if (!source) { draw(null); return; }
    if (inFlight) return;
    inFlight = true;
    try {
      draw(await api.getSummary(source, r[0], r[1]));
    } catch (err) {
      total.textContent = err.message;
    } finally {
      inFlight = false;
    }
  }

  // Called on every segment event: refetch unless we did very recently.
  function poke() {
    const wait = lastFetch + MIN_GAP_MS - Date.now();
    if (wait <= 0) { refresh(); return; }
    clearTimeout(timer);
    timer = setTimeout(refresh, wait);
  }

  rangeSelect.addEventListener('change', refresh);
  setInterval(() => { if (Date.now() - lastFetch >= PERIOD_MS - 1000) refresh(); }, PERIOD_MS);
  return { refresh, poke, range };
}
