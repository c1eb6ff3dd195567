// Server-side genre segments of the viewed source, newest first ("14:02:10–14:05:40 jazz · 82%").

import { colorOf, fmtClock, fmtDuration } from './theme.js';

const SHOWN = 40;

export function createSegments(list, empty) {
  return {
    update(segments) {
      const newest = segments.slice(-SHOWN).reverse();
      empty.hidden = newest.length > 0;
      list.replaceChildren(...newest.map((s) => {
        const li = document.createElement('li');
        li.classList.toggle('current', !!s.open);
        li.style.setProperty('--genre', colorOf(s.genre));
        const dot = document.createElement('i');
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = s.genre;
        const when = document.createElement('span');
        when.className = 'when';
        when.textContent = `${fmtClock(s.start_wall)}–${s.open ? 'now' : fmtClock(s.end_wall)}`;
        const conf = document.createElement('span');
        conf.className = 'conf';
        conf.textContent = s.mean_confidence == null ? '–' : `${Math.round(s.mean_confidence * 100)}%`;
        li.title = `${s.genre} for ${fmtDuration((s.end_wall ?? s.start_wall) - s.start_wall)}, `
          + `mean confidence ${(s.mean_confidence ?? 0).toFixed(2)}${s.open ? ' (still playing)' : ''}`;
        li.append(dot, name, when, conf);
        return li;
      }));
    },
  };
}
