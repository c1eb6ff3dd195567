// "Recent genres": runs of the same top genre over the buffered timeline, newest first.

import { fmtTime, genreColor } from './theme.js';

export function segmentsOf(preds) {
  const runs = [];
  for (const p of preds) {
    const last = runs[runs.length - 1];
    if (last && last.top === p.top) {
      last.end = p.t;
      last.n += 1;
      last.conf += p.confidence;
    } else {
      runs.push({ top: p.top, index: p.labels.indexOf(p.top), start: p.t, end: p.t, n: 1, conf: p.confidence });
    }
  }
  return runs.reverse();
}

export function createSegments(list) {
  return {
    update(preds) {
      const runs = segmentsOf(preds).slice(0, 30);
      list.replaceChildren(...runs.map((r, k) => {
        const li = document.createElement('li');
        li.classList.toggle('current', k === 0);
        li.style.setProperty('--genre', genreColor(Math.max(r.index, 0)));
        const dot = document.createElement('i');
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = r.top;
        const when = document.createElement('span');
        when.className = 'when';
        when.textContent = `${fmtTime(r.start)}${r.n > 1 ? `–${fmtTime(r.end)}` : ''}`;
        const conf = document.createElement('span');
        conf.className = 'conf';
        conf.textContent = `${Math.round((r.conf / r.n) * 100)}%`;
        conf.title = 'mean confidence';
        li.append(dot, name, when, conf);
        return li;
      }));
    },
  };
}
