// Top non-genre tags (instruments, moods, ...) with score bars.

import { TOP_TAGS } from './contract.js';

export function createTags(list) {
  return {
    reset() { list.replaceChildren(); },
    update(p) {
      const tags = (p.tags || []).slice(0, TOP_TAGS);
      const max = Math.max(1e-6, ...tags.map((t) => t.score));
      list.replaceChildren(...tags.map((t) => {
        const li = document.createElement('li');
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = t.name;
        const score = document.createElement('span');
        score.className = 'score';
        score.textContent = t.score.toFixed(2);
        const bar = document.createElement('div');
        bar.className = 'bar';
        const fill = document.createElement('div');
        // Scale to the best tag so weak-but-ranked tags stay visible.
        fill.style.width = `${Math.max(4, (t.score / max) * 100)}%`;
        bar.append(fill);
        li.append(name, score, bar);
        return li;
      }));
    },
  };
}
