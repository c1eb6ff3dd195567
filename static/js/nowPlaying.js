// The big "current top genre" card (or "Speech", "Silence", "Noise" when a window has no genre).

import { capitalise, contentColor, fmtTime, genreColor } from './theme.js';

export function createNowPlaying() {
  const card = document.getElementById('now-card');
  const genre = document.getElementById('top-genre');
  const meter = document.getElementById('top-meter');
  const conf = document.getElementById('top-confidence');
  const badge = document.getElementById('top-uncertain');
  const runner = document.getElementById('top-runner');
  const sourceLabel = document.getElementById('now-source');
  const tempo = document.getElementById('top-tempo');

  // The source's tempo over its last seconds (null when the window is not music); an octave
  // it may as well be (half or double) is named after it.
  function showTempo(t) {
    tempo.hidden = !t;
    if (!t) return;
    const alt = t.alternative == null ? '' : ` (or ${Math.round(t.alternative)})`;
    tempo.textContent = `${Math.round(t.bpm)} BPM${alt}`;
    tempo.title = t.alternative == null ? 'Tempo over the last 15 s'
      : `Tempo over the last 15 s: ${t.bpm.toFixed(1)} BPM, or maybe ${t.alternative.toFixed(1)} (half or double)`;
  }

  function reset(source) {
    card.dataset.state = 'idle';
    genre.textContent = '—';
    genre.title = '';
    meter.style.width = '0';
    conf.textContent = source ? 'waiting for the first window…' : 'no source';
    badge.hidden = true;
    runner.textContent = '';
    showTempo(null);
    sourceLabel.textContent = source ? `· ${source.label}` : '';
  }

  // How long the same genre has been on top (looking back through the buffer).
  function steadyFor(p, preds) {
    let since = p.t;
    for (let i = preds.length - 1; i >= 0 && preds[i].top === p.top; i -= 1) since = preds[i].t;
    return p.t - since;
  }

  // Talk, silence or noise: the window has no genre (`top` null); say what it is instead.
  function showContent(p, source, preds) {
    let since = p.t;
    for (let i = preds.length - 1; i >= 0 && preds[i].content === p.content; i -= 1) since = preds[i].t;
    const share = (p.content_probs || {})[p.content];
    card.style.setProperty('--genre', contentColor(p.content));
    card.dataset.state = 'content';
    card.dataset.content = p.content;
    genre.textContent = capitalise(p.content);
    genre.title = `${capitalise(p.content)}: no genre for this window`;
    meter.style.width = share == null ? '100%' : `${(share * 100).toFixed(1)}%`;
    conf.textContent = share == null ? 'no genre' : `${(share * 100).toFixed(0)}% · no genre`;
    badge.hidden = true;
    showTempo(null);
    runner.textContent = p.t - since >= 1 ? `${p.content} for ${fmtTime(p.t - since)}` : 'just started';
    if (source) sourceLabel.textContent = `· ${source.label}`;
  }

  function update(p, source, preds = []) {
    if (p.top == null && p.content) { showContent(p, source, preds); return; }
    delete card.dataset.content;
    card.style.setProperty('--genre', genreColor(p.top));
    card.dataset.state = p.uncertain ? 'uncertain' : 'confident';
    genre.textContent = p.top;
    genre.title = p.uncertain ? `Uncertain: best guess ${p.top}` : p.top;
    meter.style.width = `${(p.confidence * 100).toFixed(1)}%`;
    conf.textContent = `${(p.confidence * 100).toFixed(0)}%`;
    badge.hidden = !p.uncertain;
    showTempo(p.tempo);
    const order = p.probs.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
    const next = order.slice(1, 3).map(([v, i]) => `${p.labels[i]} ${(v * 100).toFixed(0)}%`);
    const steady = steadyFor(p, preds);
    runner.textContent = [
      next.length ? `then ${next.join(' · ')}` : '',
      steady >= 1 ? `on top for ${fmtTime(steady)}` : 'just changed',
    ].filter(Boolean).join('\n');
    if (source) sourceLabel.textContent = `· ${source.label}`;
  }

  return { reset, update };
}
