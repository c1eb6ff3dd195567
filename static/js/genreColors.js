// A genre's colour goes by its name, never its place in a model's labels: it stays the same
// across models, in the history of an earlier model and for labels a user trained. Common
// genres have a fixed colour; any other name gets one from a hash of the name. No page data is
// needed, so every page (the dashboard, the library) shows a genre in the same colour.
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
