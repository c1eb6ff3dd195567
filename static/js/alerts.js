// Alerts of every source (live `alert` events + /api/alerts for the viewed source) and the
// rules editor of the viewed source (expected genres + duration; silence, talk, missing music on/off + duration).

import * as api from './api.js';
import { RULE_DEFAULTS } from './contract.js';
import { fmtClock } from './theme.js';

const SHOWN = 30;

export function createAlerts({ list, empty, firingBadge, editButton, dialog, onSave, toast, getContext }) {
  const alerts = new Map(); // key → alert

  const key = (a) => `${a.source}|${a.rule}|${a.state}|${Number(a.wall).toFixed(1)}`;

  function render() {
    const items = [...alerts.values()].sort((a, b) => b.wall - a.wall).slice(0, SHOWN);
    // Firing = the latest event of a (source, rule) is "firing".
    const latest = new Map();
    for (const a of [...alerts.values()].sort((x, y) => x.wall - y.wall)) latest.set(`${a.source}|${a.rule}`, a.state);
    const firing = [...latest.values()].filter((s) => s === 'firing').length;
    firingBadge.hidden = firing === 0;
    firingBadge.textContent = `${firing} firing`;
    empty.hidden = items.length > 0;
    list.replaceChildren(...items.map((a) => {
      const li = document.createElement('li');
      li.className = a.state;
      const badge = document.createElement('span');
      badge.className = `badge ${a.state === 'firing' ? 'error' : 'running'}`;
      badge.textContent = a.state;
      const when = document.createElement('span');
      when.className = 'when';
      when.textContent = fmtClock(a.wall);
      const msg = document.createElement('span');
      msg.className = 'msg';
      msg.textContent = a.message || a.type;
      const src = document.createElement('span');
      src.className = 'src';
      src.textContent = a.source;
      li.append(badge, when, src, msg);
      return li;
    }));
  }

  function add(a) { alerts.set(key(a), a); render(); }

  async function load(source) {
    if (!source) return;
    try {
      const to = Date.now() / 1000;
      const rows = await api.getAlerts(source, to - 24 * 3600, to);
      (rows || []).forEach((a) => alerts.set(key({ source, ...a }), { source, ...a }));
      render();
    } catch (err) {
      toast.show(err.message, { level: 'error', title: 'Alerts' });
    }
  }

  // --- rules editor ---------------------------------------------------------------------------
  const form = dialog.querySelector('form');
  const genres = dialog.querySelector('#rule-genres');
  const missingNote = dialog.querySelector('#rule-missing');
  const genreOn = dialog.querySelector('#rule-genre-on');
  const genreFor = dialog.querySelector('#rule-genre-for');
  const silenceOn = dialog.querySelector('#rule-silence-on');
  const silenceFor = dialog.querySelector('#rule-silence-for');
  const talkOn = dialog.querySelector('#rule-talk-on');
  const talkFor = dialog.querySelector('#rule-talk-for');
  const noMusicOn = dialog.querySelector('#rule-nomusic-on');
  const noMusicFor = dialog.querySelector('#rule-nomusic-for');
  const title = dialog.querySelector('#rules-source');

  // One expected-genre checkbox; ``missing``: a genre the rule names that the model lacks.
  function chip(label, checked, missing, model) {
    const lab = document.createElement('label');
    lab.className = missing ? 'chip missing' : 'chip';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = label;
    box.checked = checked;
    lab.append(box, ` ${label}`);
    if (missing) lab.title = `${label} is not a genre of model ${model || '(none)'}: it never comes out on top`;
    return lab;
  }

  async function openEditor() {
    const { source, labels, model } = getContext();
    if (!source) { toast.show('Start or pick a source first.', { level: 'warning', title: 'Rules' }); return; }
    let rules = [];
    let unhonoured = []; // the server's word on each rule the model cannot honour as written
    try { ({ rules = [], unhonoured = [] } = await api.getRules(source)); } catch (err) {
      toast.show(err.message, { level: 'error', title: 'Rules' });
      return;
    }
    const g = rules.find((r) => r.type === 'unexpected_genre');
    const s = rules.find((r) => r.type === 'silence');
    const talk = rules.find((r) => r.type === 'talk');
    const noMusic = rules.find((r) => r.type === 'no_music');
    title.textContent = source;
    // Genres of another model stay in the rule, shown apart, until they are unticked.
    const expected = g ? g.expected : [];
    const missing = expected.filter((x) => !labels.includes(x));
    genres.replaceChildren(...labels.map((label) => chip(label, expected.includes(label), false)),
      ...missing.map((label) => chip(label, true, true, model)));
    missingNote.hidden = !missing.length && !unhonoured.length;
    missingNote.textContent = missing.length
      ? `Greyed: not ${missing.length > 1 ? 'genres' : 'a genre'} of model ${model || '(none)'}; kept, but never matched.` : '';
    if (unhonoured.length) missingNote.textContent += ` ${unhonoured.map((u) => `${u.message[0].toUpperCase()}${u.message.slice(1)}.`).join(' ')}`;
    genreOn.checked = !!g;
    genreFor.value = g ? g.for : RULE_DEFAULTS.unexpected_genre.for;
    silenceOn.checked = !!s;
    silenceFor.value = s ? s.for : RULE_DEFAULTS.silence.for;
    dialog.dataset.threshold = s ? s.threshold_db : RULE_DEFAULTS.silence.threshold_db;
    talkOn.checked = !!talk;
    talkFor.value = talk ? talk.for : RULE_DEFAULTS.talk.for;
    noMusicOn.checked = !!noMusic;
    noMusicFor.value = noMusic ? noMusic.for : RULE_DEFAULTS.no_music.for;
    dialog.showModal();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const { source } = getContext();
    const rules = [];
    if (genreOn.checked) {
      const expected = [...genres.querySelectorAll('input:checked')].map((b) => b.value);
      if (!expected.length) { toast.show('Tick at least one expected genre.', { level: 'warning', title: 'Rules' }); return; }
      rules.push({ type: 'unexpected_genre', expected, for: Number(genreFor.value) });
    }
    if (silenceOn.checked) {
      rules.push({ type: 'silence', for: Number(silenceFor.value), threshold_db: Number(dialog.dataset.threshold) });
    }
    if (talkOn.checked) rules.push({ type: 'talk', for: Number(talkFor.value) });
    if (noMusicOn.checked) rules.push({ type: 'no_music', for: Number(noMusicFor.value) });
    if (await onSave(source, rules)) dialog.close();
  });
  dialog.querySelector('[data-cancel]').addEventListener('click', () => dialog.close());
  editButton.addEventListener('click', openEditor);

  return { add, load, render };
}
