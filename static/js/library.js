// The library page: the same REST API as `run.py library` (/api/library*), polled while a run goes.

import { request } from './api.js';
import { genreColor } from './genreColors.js';

const $ = (id) => document.getElementById(id);
const state = { tracks: [], sort: { key: 'genre', dir: 1 }, genre: '', playing: null };

const name = (path) => path.split('/').pop();
const fmtTime = (s) => (s == null ? '–' : `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, '0')}`);
const genreOf = (t) => t.genre ?? `(${t.content})`;

function sortValue(t, key) {
  if (key === 'name') return name(t.path).toLowerCase();
  if (key === 'genre') return genreOf(t);
  const v = t[key];
  return v == null ? -Infinity : v;
}

function visible() {
  const q = $('lib-search').value.trim().toLowerCase();
  const minConf = parseFloat($('lib-minconf').value) || 0;
  const onlyUncertain = $('lib-uncertain').checked;
  const { key, dir } = state.sort;
  return state.tracks
    .filter((t) => !state.genre || genreOf(t) === state.genre)
    .filter((t) => !q || t.path.toLowerCase().includes(q))
    .filter((t) => (t.confidence ?? 0) >= minConf)
    .filter((t) => !onlyUncertain || t.uncertain)
    .sort((a, b) => {
      const x = sortValue(a, key), y = sortValue(b, key);
      return (x < y ? -1 : x > y ? 1 : 0) * dir || a.path.localeCompare(b.path);
    });
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function renderTable() {
  const body = $('lib-table').querySelector('tbody');
  body.replaceChildren();
  for (const t of visible()) {
    const tr = document.createElement('tr');
    if (t.path === state.playing) tr.className = 'playing';
    const play = document.createElement('button');
    play.className = 'play';
    play.textContent = '▶';
    play.title = `Play ${name(t.path)}`;
    play.addEventListener('click', () => playTrack(t.path));
    const first = document.createElement('td');
    first.append(play);
    const path = cell(name(t.path), 'path');
    path.title = t.path;
    tr.append(first, path,
      cell(genreOf(t), t.genre ? '' : 'none'),
      cell(t.confidence == null ? '–' : t.confidence.toFixed(2), 'num'),
      cell(t.runner_up ?? '–'),
      cell(t.tempo == null ? '–' : t.tempo.toFixed(0), 'num'),
      cell(fmtTime(t.duration), 'num'),
      cell(t.uncertain ? 'uncertain' : '', t.uncertain ? 'warn' : ''));
    body.append(tr);
  }
  for (const th of $('lib-table').querySelectorAll('th[data-key]')) {
    th.classList.toggle('sorted-asc', th.dataset.key === state.sort.key && state.sort.dir > 0);
    th.classList.toggle('sorted-desc', th.dataset.key === state.sort.key && state.sort.dir < 0);
  }
}

function renderShare() {
  const counts = new Map();
  for (const t of state.tracks) counts.set(genreOf(t), (counts.get(genreOf(t)) || 0) + 1);
  const total = state.tracks.length || 1;
  const rows = [...counts].sort((a, b) => b[1] - a[1]);
  const box = $('lib-share-bars');
  box.replaceChildren();
  for (const [genre, n] of rows) {
    const label = document.createElement('button');
    label.textContent = genre;
    label.className = genre === state.genre ? 'active' : '';
    label.title = 'Show only this genre (click again for all)';
    label.addEventListener('click', () => { setGenre(state.genre === genre ? '' : genre); });
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = `${(100 * n) / rows[0][1]}%`;
    bar.style.background = genre.startsWith('(') ? 'var(--muted)' : genreColor(genre); // "(speech)": no genre
    const count = document.createElement('span');
    count.className = 'count';
    count.textContent = `${n} · ${Math.round((100 * n) / total)}%`;
    box.append(label, bar, count);
  }
  const select = $('lib-genre');
  const keep = state.genre;
  select.replaceChildren(new Option('all genres', ''), ...rows.map(([g]) => new Option(g, g)));
  select.value = keep;
  $('lib-count').querySelector('span').textContent = `${state.tracks.length} tracks`;
}

function setGenre(genre) {
  state.genre = genre;
  $('lib-genre').value = genre;
  renderShare();
  renderTable();
}

function playTrack(path) {
  state.playing = path;
  const player = $('lib-player');
  player.src = `/api/library/audio?${new URLSearchParams({ path })}`;
  player.play().catch(() => { /* autoplay refused: the controls are there */ });
  renderTable();
}

function showJob(job) {
  const running = job.state === 'running';
  $('lib-start').disabled = running;
  $('lib-progress').hidden = !running;
  if (running) {
    const done = job.done || 0, total = job.total;
    $('lib-bar-fill').style.width = total ? `${(100 * done) / total}%` : '0';
    const rate = job.rate_tracks_per_s ? `${job.rate_tracks_per_s.toFixed(2)} tracks/s` : '';
    const eta = job.eta_s != null ? `ETA ${fmtTime(job.eta_s)}` : '';
    $('lib-progress-text').textContent = total == null ? 'scanning…'
      : [`${done}/${total}`, rate, eta, job.reused ? `${job.reused} already done` : ''].filter(Boolean).join(' · ');
  }
  const s = job.summary;
  if (job.state === 'failed') $('lib-summary').textContent = `Run failed: ${job.error}`;
  else if (s) {
    const skipped = s.skipped ? `\nskipped ${s.skipped}: ${Object.entries(s.skipped_reasons).map(([k, n]) => `${k} ${n}`).join(', ')}` : '';
    const notMusic = Object.entries(s.not_music).map(([k, n]) => `${k} ${n}`).join(', ');
    $('lib-summary').textContent = `${s.tracks} tracks (${s.analysed} analysed, ${s.reused} from earlier runs) in ${s.seconds} s`
      + `\nuncertain ${s.uncertain}${notMusic ? ` · not music: ${notMusic}` : ''}${skipped}`;
  }
}

async function load() {
  const data = await request('GET', '/api/library');
  state.tracks = data.tracks;
  showJob(data.job);
  renderShare();
  renderTable();
  return data.job;
}

async function poll() {
  const { job } = await request('GET', '/api/library/job');
  showJob(job);
  if (job.state === 'running') setTimeout(poll, 1000);
  else await load();
}

$('lib-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const { job } = await request('POST', '/api/library/scan', { folder: $('lib-folder').value, full: $('lib-full').checked });
    showJob(job);
    setTimeout(poll, 500);
  } catch (err) {
    $('lib-summary').textContent = err.message;
  }
});
for (const id of ['lib-search', 'lib-minconf', 'lib-uncertain']) $(id).addEventListener('input', renderTable);
$('lib-genre').addEventListener('change', () => setGenre($('lib-genre').value));
for (const th of $('lib-table').querySelectorAll('th[data-key]')) {
  th.addEventListener('click', () => {
    const key = th.dataset.key;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : (['confidence', 'tempo', 'duration'].includes(key) ? -1 : 1) };
    renderTable();
  });
}

load().then((job) => { if (job.state === 'running') poll(); }).catch((err) => { $('lib-summary').textContent = err.message; });
