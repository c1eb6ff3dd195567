// Source picker: one tab per source kind the server offers (contract.SOURCE_KINDS), with Start and Stop.
// A kind with a text field needs nothing here; the device list and the upload have their own code.

import * as api from './api.js';
import { SOURCE_KINDS } from './contract.js';

export function createPicker({ onStart, onStop, toast }) {
  const root = document.getElementById('picker');
  const tabs = [...root.querySelectorAll('[data-tab]')];
  const panels = [...root.querySelectorAll('[data-panel]')];
  const deviceSelect = document.getElementById('device-select');
  const deviceHint = document.getElementById('device-hint');
  const uploadInput = document.getElementById('upload-input');
  const progress = document.getElementById('upload-progress');
  const uploadHint = document.getElementById('upload-hint');
  const hopSelect = document.getElementById('hop-select');
  const startBtn = document.getElementById('start-btn');
  const stopBtn = document.getElementById('stop-btn');
  let tab = SOURCE_KINDS[0].kind;
  let devicesLoaded = false;

  function selectTab(name) {
    tab = name;
    tabs.forEach((t) => t.classList.toggle('active', t.dataset.tab === name));
    panels.forEach((p) => p.classList.toggle('active', p.dataset.panel === name));
    if (name === 'mic' && !devicesLoaded) loadDevices();
  }
  tabs.forEach((t) => t.addEventListener('click', () => selectTab(t.dataset.tab)));

  async function loadDevices() {
    deviceSelect.replaceChildren(new Option('Loading devices…', ''));
    try {
      const devices = await api.getDevices();
      devicesLoaded = true;
      deviceSelect.replaceChildren();
      if (!devices.length) {
        deviceSelect.append(new Option('No input devices found', ''));
        deviceHint.textContent = 'No capture device is visible to the server.';
        return;
      }
      const inputs = devices.filter((d) => !d.loopback);
      const loops = devices.filter((d) => d.loopback);
      const group = (label, items) => {
        const g = document.createElement('optgroup');
        g.label = label;
        g.append(...items);
        return g;
      };
      const inputOpts = inputs.map((d) => {
        const rate = d.default_samplerate ? `${Math.round(d.default_samplerate / 100) / 10} kHz` : '? kHz';
        const text = `${d.name} · ${d.max_input_channels} ch · ${rate}${d.is_default ? ' (default)' : ''}`;
        const opt = new Option(text, String(d.index), false, !!d.is_default);
        opt.title = `${text} — ${d.hostapi || ''}`;
        return opt;
      });
      // Loopback: the monitor of an output, i.e. what this computer is playing.
      const loopOpts = loops.map((d) => {
        const opt = new Option(`What this computer is playing · ${d.name}`, `loopback:${d.pulse_source}`);
        opt.title = d.pulse_source;
        return opt;
      });
      if (inputOpts.length) deviceSelect.append(group('Microphone / line-in', inputOpts));
      if (loopOpts.length) deviceSelect.append(group('What this computer is playing', loopOpts));
      deviceHint.textContent = `${inputs.length} input${inputs.length === 1 ? '' : 's'}`
        + `${loops.length ? `, ${loops.length} loopback` : ''}.`;
    } catch (err) {
      deviceSelect.replaceChildren(new Option('Device list unavailable', ''));
      toast.show(err.message, { level: 'error', title: 'Devices' });
    }
  }
  document.getElementById('device-refresh').addEventListener('click', loadDevices);

  async function buildSpec() {
    const hop = Number(hopSelect.value);
    if (tab === 'mic') {
      if (deviceSelect.value === '') throw new Error('Pick an input device first.');
      const v = deviceSelect.value;
      return { kind: 'mic', device: v.startsWith('loopback:') ? v : Number(v), hop };
    }
    if (tab === 'upload') return uploadSpec(hop);
    const offer = SOURCE_KINDS.find((k) => k.kind === tab);
    const spec = { kind: tab, hop };
    if (offer.field) {
      const value = root.querySelector(`[data-panel="${tab}"] [data-field]`).value.trim();
      if (!value || (offer.pattern && !new RegExp(offer.pattern, 'i').test(value))) throw new Error(offer.prompt);
      spec[offer.field] = value;
    }
    return spec;
  }

  async function uploadSpec(hop) {
    const file = uploadInput.files[0];
    if (!file) throw new Error('Choose an audio file to upload.');
    const limit = Number(document.body.dataset.maxUploadMb || 0);
    if (limit && file.size > limit * 1024 * 1024) throw new Error(`${file.name} is larger than ${limit} MB.`);
    progress.hidden = false;
    const bar = progress.firstElementChild;
    bar.style.width = '0';
    uploadHint.textContent = `Uploading ${file.name}…`;
    try {
      const res = await api.upload(file, (f) => { bar.style.width = `${(f * 100).toFixed(0)}%`; });
      uploadHint.textContent = `${res.name} · ${res.duration.toFixed(1)} s`;
      return { kind: 'upload', upload_id: res.upload_id, hop };
    } catch (err) {
      uploadHint.textContent = 'Upload rejected.';
      throw err;
    } finally {
      progress.hidden = true;
    }
  }

  startBtn.addEventListener('click', async () => {
    startBtn.disabled = true;
    try {
      await onStart(await buildSpec());
    } catch (err) {
      toast.show(err.message, { level: 'error', title: 'Start' });
    } finally {
      startBtn.disabled = false;
    }
  });
  stopBtn.addEventListener('click', () => onStop());
  root.querySelectorAll('[data-field]').forEach((input) => {
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') startBtn.click(); });
  });

  return {
    setStoppable(ok) { stopBtn.disabled = !ok; },
  };
}
