// "Side by side": one compact card per source (state, top genre, confidence, mini bars, segment).

import { capitalise, colorOf, contentColor, fmtClock, genreColor } from './theme.js';
import { badgeClass, stateText } from './sourceList.js';

export function createGrid({ root, onOpen }) {
  const cards = new Map();

  function card(id) {
    if (cards.has(id)) return cards.get(id);
    const el = document.createElement('article');
    el.className = 'card mini';
    el.dataset.id = id;
    el.innerHTML = `<header><span class="label"></span><span class="badge"></span></header>
      <div class="mini-genre">—</div><div class="mini-conf"></div>
      <div class="mini-bars"></div><div class="mini-seg muted"></div><div class="mini-msg"></div>`;
    el.addEventListener('click', () => onOpen(id));
    el.title = 'Open in detail';
    cards.set(id, el);
    return el;
  }

  function renderPrediction(el, p) {
    const { top, probs, uncertain } = p.shown; // see windows.js
    const i = p.labels.indexOf(top);
    if (top == null && p.content) { // talk, silence, noise: no genre
      el.style.setProperty('--genre', contentColor(p.content));
      el.querySelector('.mini-genre').textContent = capitalise(p.content);
      el.querySelector('.mini-conf').textContent = 'no genre';
    } else {
      el.style.setProperty('--genre', genreColor(top));
      el.querySelector('.mini-genre').textContent = top;
      el.querySelector('.mini-conf').textContent = `${Math.round(probs[i] * 100)}%${uncertain ? ' · uncertain' : ''}`;
    }
    const order = probs.map((v, k) => [v, k]).sort((a, b) => b[0] - a[0]).slice(0, 5);
    el.querySelector('.mini-bars').replaceChildren(...order.map(([v, k]) => {
      const row = document.createElement('div');
      row.className = 'mini-bar';
      row.innerHTML = '<span></span><b><i></i></b><em></em>';
      row.children[0].textContent = p.labels[k];
      row.children[1].firstChild.style.cssText = `width:${(v * 100).toFixed(1)}%;background:${genreColor(p.labels[k])}`;
      row.children[2].textContent = `${Math.round(v * 100)}%`;
      return row;
    }));
    const seg = p.segment;
    el.querySelector('.mini-seg').textContent = seg
      ? `${seg.genre} since ${fmtClock(seg.start_wall)}` : 'no segment yet';
    el.querySelector('.mini-seg').style.color = seg ? colorOf(seg.genre) : '';
  }

  return {
    render(sources, buffers) {
      const ids = new Set(sources.map((s) => s.id));
      for (const id of [...cards.keys()]) if (!ids.has(id)) { cards.get(id).remove(); cards.delete(id); }
      root.replaceChildren(...sources.map((s) => {
        const el = card(s.id);
        el.querySelector('.label').textContent = s.label;
        const badge = el.querySelector('.badge');
        badge.className = badgeClass(s);
        badge.textContent = stateText(s);
        el.querySelector('.mini-msg').textContent = s.error || s.notice || '';
        const buf = buffers(s.id);
        if (buf.last) renderPrediction(el, buf.last);
        return el;
      }));
      root.dataset.count = String(sources.length);
    },
    prediction(p) {
      if (cards.has(p.source)) renderPrediction(cards.get(p.source), p);
    },
  };
}
