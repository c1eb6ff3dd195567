// Classified windows as the dashboard reads them. Live `prediction` events and /api/history
// rows are made into one shape here, and nowhere else (fields as docs/events.md, `prediction`).

// The genre to show for a window: the smoothed one with its own flag when the window carries
// it (live), else the raw window's (history keeps no smoothed genre): a genre never shows with
// the other view's probabilities or uncertain flag.
function shownGenre(p) {
  if (p.smoothed_top !== undefined && p.smoothed) {
    return { top: p.smoothed_top, probs: p.smoothed, uncertain: !!p.smoothed_uncertain };
  }
  return { top: p.top, probs: p.probs, uncertain: !!p.uncertain };
}

// A live `prediction` event.
export function fromEvent(p) {
  return { ...p, shown: shownGenre(p) };
}

// A /api/history window (probs and smoothed keyed by label) of ``source``.
export function fromHistory(w, source) {
  const labels = Object.keys(w.probs || {});
  const smoothed = w.smoothed ? labels.map((l) => w.smoothed[l] ?? 0) : null;
  const p = {
    source, t: w.t, wall: w.wall, model: w.model, labels, probs: labels.map((l) => w.probs[l]),
    top: w.top, confidence: w.confidence, uncertain: !!w.uncertain, smoothed, tags: [], level_db: w.level_db,
    content: w.content, content_probs: {},
    fromHistory: true,
  };
  return { ...p, shown: shownGenre(p) };
}
