// Shared Plotly look and the per-genre colours used by every panel.

import { UNCERTAIN } from './contract.js';

// A genre's colour goes by its name, never its place in a model's labels: it stays the same
// across models, in the history of an earlier model and for labels a user trained. Common
// genres have a fixed colour; any other name gets one from a hash of the name.
const GENRE_COLORS = {
  blues: '#4cc9f0', classical: '#f72585', country: '#ffd166', disco: '#06d6a0', hiphop: '#ff8c42',
  jazz: '#9b5de5', metal: '#ef476f', pop: '#a0c4ff', reggae: '#b5e48c', rock: '#f4a3c0', electronic: '#4361ee',
};

// "#rrggbb" (callers append an alpha byte) of an HSL colour; h in degrees, s and l in [0, 1].
function hslHex(h, s, l) {
  const f = (n) => {
    const k = (n + h / 30) % 12;
    const v = l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(v * 255).toString(16).padStart(2, '0');
  };
  return `#${f(0)}${f(8)}${f(4)}`;
}

export function genreColor(name) {
  const key = String(name).toLowerCase().replace(/[^\p{L}\p{N}]/gu, ''); // "Hip-Hop" is hiphop
  if (Object.hasOwn(GENRE_COLORS, key)) return GENRE_COLORS[key];
  let hash = 2166136261; // FNV-1a, then murmur3's finaliser so that similar names land apart
  for (const ch of key) hash = Math.imul(hash ^ ch.codePointAt(0), 16777619);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  hash = (hash ^ (hash >>> 16)) >>> 0;
  return hslHex(hash % 360, 0.7, 0.56 + 0.08 * ((hash >>> 9) % 3));
}

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
