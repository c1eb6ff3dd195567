// Scrolling mel-spectrogram heatmap of the last ~20 s.

import { AXIS, MAGMA, PLOT_CONFIG, baseLayout } from './theme.js';
import { SPECTROGRAM_SECONDS } from './store.js';

// librosa's default (Slaney) mel scale, to label mel bands in Hz.
const F_SP = 200 / 3;
const MIN_LOG_HZ = 1000;
const MIN_LOG_MEL = MIN_LOG_HZ / F_SP;
const LOGSTEP = Math.log(6.4) / 27;
const hzToMel = (f) => (f < MIN_LOG_HZ ? f / F_SP : MIN_LOG_MEL + Math.log(f / MIN_LOG_HZ) / LOGSTEP);
const melToHz = (m) => (m < MIN_LOG_MEL ? m * F_SP : MIN_LOG_HZ * Math.exp(LOGSTEP * (m - MIN_LOG_MEL)));

export function bandCentresHz(nMels, fmax) {
  const top = hzToMel(fmax);
  return Array.from({ length: nMels }, (_, i) => melToHz(((i + 1) * top) / (nMels + 1)));
}

function hzTicks(nMels, fmax) {
  const centres = bandCentresHz(nMels, fmax);
  const vals = [];
  const text = [];
  for (const hz of [100, 250, 500, 1000, 2000, 4000, 8000, 11000, 16000]) {
    if (hz > centres[nMels - 1] || hz < centres[0]) continue;
    const i = centres.findIndex((c) => c >= hz);
    // Fractional band index, so the tick sits exactly at that frequency.
    const frac = i > 0 ? i - 1 + (hz - centres[i - 1]) / (centres[i] - centres[i - 1]) : 0;
    vals.push(frac);
    text.push(hz >= 1000 ? `${hz / 1000}k` : String(hz));
  }
  if (fmax >= 1000 && !vals.some((v) => v > nMels - 3)) { // label the top edge too
    vals.push(nMels - 1);
    text.push(`${Math.round(fmax / 100) / 10}k`);
  }
  return { vals, text, centres };
}

export function createSpectrogram(div) {
  let ticksFor = null;
  let ticks = null;
  let zmax = null;
  let pending = null;
  let scheduled = false;

  function layout(buf, tEnd) {
    const meta = buf.specMeta || { n_mels: 96, fmax: 8000, db_floor: -80 };
    const end = Math.max(tEnd, SPECTROGRAM_SECONDS);
    return baseLayout({
      margin: { l: 48, r: 8, t: 10, b: 26 },
      xaxis: { ...AXIS, range: [end - SPECTROGRAM_SECONDS, end], autorange: false, ticksuffix: ' s', showgrid: false },
      yaxis: {
        ...AXIS, range: [-0.5, meta.n_mels - 0.5], autorange: false, showgrid: false, fixedrange: true,
        ticklabeloverflow: 'allow', tickvals: ticks ? ticks.vals : [], ticktext: ticks ? ticks.text : [], title: { text: 'Hz', standoff: 4, font: { size: 11 } },
      },
    });
  }

  function render(buf) {
    const meta = buf.specMeta || { n_mels: 96, fmax: 8000, db_floor: -80 };
    const key = `${meta.n_mels}/${meta.fmax}`;
    if (key !== ticksFor) { ticks = hzTicks(meta.n_mels, meta.fmax); ticksFor = key; }
    const cols = buf.specColumns;
    const n = cols.length;
    const z = Array.from({ length: meta.n_mels }, () => new Array(n));
    let peak = meta.db_floor + 30;
    for (let c = 0; c < n; c += 1) {
      const col = cols[c];
      for (let r = 0; r < meta.n_mels; r += 1) {
        const v = col[r];
        z[r][c] = v;
        if (v > peak) peak = v;
      }
    }
    // Colour range follows the loudest recent column, rising fast and falling slowly.
    const target = Math.ceil(peak / 5) * 5;
    zmax = zmax === null || target > zmax ? target : Math.max(target, zmax - 1);
    const tEnd = n ? buf.specTimes[n - 1] : 0;
    const trace = {
      type: 'heatmap', x: buf.specTimes, y: ticks.centres.map((_, i) => i), z,
      // ~80 dB of dynamic range under the peak keeps dense mixes from washing out.
      zmin: Math.max(meta.db_floor, zmax - 80), zmax, colorscale: MAGMA, zsmooth: false,
      hovertemplate: '%{x:.2f} s · band %{y} · %{z:.0f} dB<extra></extra>',
      colorbar: { thickness: 8, outlinewidth: 0, ticksuffix: ' dB', tickfont: { size: 10 }, len: 1, x: 1.005, xpad: 4 },
    };
    Plotly.react(div, [trace], layout(buf, tEnd), PLOT_CONFIG);
  }

  return {
    // Coalesce bursts of events into one redraw per animation frame.
    schedule(buf) {
      pending = buf;
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(() => {
        scheduled = false;
        render(pending);
      });
    },
    reset(buf) { zmax = null; render(buf); },
  };
}
