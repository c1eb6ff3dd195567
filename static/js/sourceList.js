// The list of sources with state badges; clicking one shows it in the panels.

import { LIVE_STATES, STATE, isKnownState } from './contract.js';

const KIND_ICON = { mic: '🎙', file: '♪', demo: '♫', stream: '⇅' };

export const isLive = (s) => !!s && LIVE_STATES.has(s.state);

export function stateText(s) {
  if (s.state === STATE.RECONNECTING) return `${s.state}${s.reconnects ? ` ×${s.reconnects}` : ''}`;
  if (s.state === STATE.RUNNING && s.reconnects) return `${s.state} · ${s.reconnects} reconnect${s.reconnects > 1 ? 's' : ''}`;
  return s.state;
}

// The badge's classes: the state names the stylesheet colours; anything else stays plain.
export const badgeClass = (s) => `badge${isKnownState(s.state) ? ` ${s.state}` : ''}`;

export function createSourceList({ onSelect, onStop, onRestart }) {
  const list = document.getElementById('source-list');
  const empty = document.getElementById('source-empty');

  function item(s, viewing) {
    const li = document.createElement('li');
    li.dataset.id = s.id;
    li.classList.toggle('viewing', s.id === viewing);
    li.title = `Show ${s.label}`;
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = `${KIND_ICON[s.kind] || '•'} ${s.label}`;
    const meta = document.createElement('span');
    meta.className = 'meta';
    const rate = s.samplerate ? `${(s.samplerate / 1000).toFixed(1)} kHz` : '…';
    // Window counts stream in only for watched sources, so only the viewed one shows them.
    meta.textContent = `${rate} · hop ${s.hop ?? '–'} s${s.id === viewing ? ` · ${s.windows ?? 0} win` : ''}`;
    const badge = document.createElement('span');
    badge.className = badgeClass(s);
    badge.textContent = stateText(s);
    meta.prepend(badge, ' ');
    li.append(label);
    if (isLive(s)) {
      const stop = document.createElement('button');
      stop.type = 'button';
      stop.className = 'stop';
      stop.textContent = '■';
      stop.title = `Stop ${s.label}`;
      stop.addEventListener('click', (e) => { e.stopPropagation(); onStop(s.id); });
      li.append(stop);
    } else if (s.state === STATE.ERROR && onRestart) {
      const again = document.createElement('button');
      again.type = 'button';
      again.className = 'stop restart';
      again.textContent = '↻';
      again.title = `Restart ${s.label}`;
      again.addEventListener('click', (e) => { e.stopPropagation(); onRestart(s.id); });
      li.append(again);
    }
    li.append(meta);
    const message = s.error || s.notice;
    if (message) {
      const msg = document.createElement('span');
      msg.className = `msg${s.error ? ' err' : ''}`;
      msg.textContent = message;
      li.append(msg);
    }
    li.addEventListener('click', () => onSelect(s.id));
    return li;
  }

  return {
    render(sources, viewing) {
      list.replaceChildren(...sources.map((s) => item(s, viewing)));
      empty.hidden = sources.length > 0;
    },
  };
}
