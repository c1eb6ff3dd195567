// Shared Plotly look and the per-genre colours used by every panel.

import { UNCERTAIN } from './contract.js';
import { genreColor } from './genreColors.js';

export { genreColor }; // the pages' shared colours; the library page takes them from genreColors.js alone

export const PLOT_CONFIG = { displayModeBar: false, responsive: true };

export function baseLayout(extra = {}) {
  return {
    paper_bgcolor: 'rgba(0,0,0,0)',
    plot_bgcolor: 'rgba(0,0,0,0)',
    font: { color: '#c8d1e3', family: 'Inter, Segoe UI, system-ui, sans-serif', size: 12 },
    margin: { l: 48, r: 12, t: 6, b: 30 },
    showlegend: false,
    hoverlabel: { bgcolor: '#1a2131', bordercolor: '#243049', font: { color: '#e6ebf5' } },
    ...extra,
  };
}

export const AXIS = { gridcolor: '#1f2940', zerolinecolor: '#243049', linecolor: '#243049', tickcolor: '#243049' };

// matplotlib's magma, sampled at nine stops.
export const MAGMA = [[0, '#000004'], [0.125, '#1d1147'], [0.25, '#51127c'], [0.375, '#832681'],
  [0.5, '#b73779'], [0.625, '#e75263'], [0.75, '#fc8961'], [0.875, '#fec488'], [1, '#fcfdbf']];

export function fmtTime(s) {
  if (!Number.isFinite(s)) return '–';
  const m = Math.floor(s / 60);
  const sec = Math.floor(s % 60);
  return `${m}:${String(sec).padStart(2, '0')}`;
}

export const UNCERTAIN_COLOR = '#5b6478';

// What a window holds when it is not music (speech, silence, noise): the names come from the
// server (`model.no_genre` in the `sources` event); colours go by their place there.
const CONTENT_PALETTE = ['#e9edf5', '#2b3347', '#a1887f'];
let contentLabels = [];
export function setContentLabels(list) { contentLabels = Array.isArray(list) ? list : []; }
export function isContent(name) { return contentLabels.includes(name); }
export function contentColor(name) {
  const i = contentLabels.indexOf(name);
  return i < 0 ? UNCERTAIN_COLOR : CONTENT_PALETTE[i % CONTENT_PALETTE.length];
}
export const capitalise = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

// Colour of a segment's or summary's genre: a content (speech, silence, noise) its own,
// "uncertain" grey, any genre (of this model or another) its genre colour.
export function colorOf(genre) {
  if (isContent(genre)) return contentColor(genre);
  return genre == null || genre === UNCERTAIN ? UNCERTAIN_COLOR : genreColor(genre);
}

// Unix seconds → local "14:02:10".
export function fmtClock(wall) {
  if (!Number.isFinite(wall)) return '–';
  return new Date(wall * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

export function fmtDuration(s) {
  if (!Number.isFinite(s)) return '–';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}
