// Rolling probability timeline (wall clock, last 3 min): smoothed solid, raw faint,
// a shaded band where the windows were talk, silence or noise, and a band of the server's
// segments (genres, speech, silence) underneath.

import { AXIS, PLOT_CONFIG, baseLayout, capitalise, colorOf, contentColor, genreColor } from './theme.js';
import { TIMELINE_SECONDS, labelsOf } from './store.js';

const BAND = [0.02, 0.15]; // paper y of the segment band, between the plot and the time axis
const ms = (wall) => wall * 1000;

export function createTimeline(div) {
  let showRaw = true;
  let last = { preds: [], segments: [] };
  let scheduled = false;

  function range(preds) {
    // Grows from the first window up to TIMELINE_SECONDS, then scrolls.
    const end = preds.length ? preds[preds.length - 1].wall : Date.now() / 1000;
    const start = Math.max(preds.length ? preds[0].wall : end, end - TIMELINE_SECONDS);
    return [ms(start), ms(Math.max(end + 1, start + 30))];
  }

  function band(segments, [x0, x1]) {
    const shapes = [];
    const annotations = [];
    for (const s of segments) {
      const a = ms(s.start_wall);
      const b = ms(s.open || s.end_wall == null ? last.preds.at(-1)?.wall ?? s.end_wall : s.end_wall);
      if (b < x0 || a > x1) continue;
      const color = colorOf(s.genre);
      shapes.push({ type: 'rect', xref: 'x', yref: 'paper', x0: a, x1: b, y0: BAND[0], y1: BAND[1],
        fillcolor: color, opacity: s.open ? 0.55 : 0.85, line: { width: 1, color: '#131824' } });
      const left = Math.max(a, x0);
      const right = Math.min(b, x1);
      if (right - left > (x1 - x0) * 0.06) { // label only where it fits
        annotations.push({ x: (left + right) / 2, y: (BAND[0] + BAND[1]) / 2, xref: 'x', yref: 'paper',
          text: `<b>${s.genre}</b>`, showarrow: false, yanchor: 'middle', yshift: 0, borderpad: 0,
          font: { size: 11, color: '#0b0e14' } });
      }
    }
    return { shapes, annotations };
  }

  // Shaded stretches of the plot where the windows were talk, silence or noise (no genre).
  function contentBand(preds, [x0, x1]) {
    const shapes = [];
    const annotations = [];
    let run = null;
    const close = (end) => {
      const a = Math.max(ms(run.start), x0);
      const b = Math.min(ms(end), x1);
      if (b > a) {
        shapes.push({ type: 'rect', xref: 'x', yref: 'paper', x0: a, x1: b, y0: BAND[1] + 0.06, y1: 1,
          fillcolor: contentColor(run.content), opacity: 0.16, line: { width: 0 }, layer: 'below' });
        if (b - a > (x1 - x0) * 0.05) {
          annotations.push({ x: (a + b) / 2, y: 0.97, xref: 'x', yref: 'paper', yanchor: 'top', showarrow: false,
            text: capitalise(run.content), font: { size: 11, color: '#e6ebf5' } });
        }
      }
      run = null;
    };
    for (const p of preds) {
      const content = p.top == null && p.content ? p.content : null;
      if (run && content !== run.content) close(p.wall - 0.5);
      if (content && !run) run = { content, start: p.wall - 0.5 };
    }
    if (run) close(preds.at(-1).wall);
    return { shapes, annotations };
  }

  function render() {
    scheduled = false;
    const { preds, segments } = last;
    // Every genre of the windows shown: after a model switch the older windows keep their own
    // labels, so values are looked up by name (a genre a window's model lacks is a gap).
    const labels = labelsOf(preds);
    const xs = preds.map((p) => ms(p.wall));
    const index = preds.map((p) => new Map(p.labels.map((l, k) => [l, k])));
    const traces = [];
    const smoothedAvailable = preds.some((p) => p.smoothed);
    labels.forEach((label) => {
      const at = (values, j) => (values && index[j].has(label) ? values[index[j].get(label)] : null);
      if (showRaw || !smoothedAvailable) {
        traces.push({ type: 'scatter', mode: 'lines', name: label, legendgroup: label, x: xs,
          y: preds.map((p, j) => (p.top == null && p.content ? null : at(p.probs, j))), showlegend: !smoothedAvailable,
          line: { color: genreColor(label), width: smoothedAvailable ? 1 : 2 }, opacity: smoothedAvailable ? 0.35 : 1,
          hovertemplate: `${label} raw %{y:.0%}<extra></extra>` });
      }
      if (smoothedAvailable) {
        traces.push({ type: 'scatter', mode: 'lines', name: label, legendgroup: label, x: xs,
          y: preds.map((p, j) => at(p.smoothed, j)), connectgaps: false,
          line: { color: genreColor(label), width: 2.2 }, hovertemplate: `${label} %{y:.0%}<extra></extra>` });
      }
    });
    const r = range(preds);
    const segBand = band(segments, r);
    const talk = contentBand(preds, r);
    const shapes = [...talk.shapes, ...segBand.shapes];
    const annotations = [...talk.annotations, ...segBand.annotations];
    const layout = baseLayout({
      margin: { l: 40, r: 8, t: 26, b: 24 },
      showlegend: true,
      legend: { orientation: 'h', x: 0, y: 1.02, yanchor: 'bottom', font: { size: 11 }, bgcolor: 'rgba(0,0,0,0)',
        itemclick: 'toggleothers', tracegroupgap: 0 },
      hovermode: 'x unified',
      xaxis: { ...AXIS, type: 'date', range: r, autorange: false, tickformat: '%H:%M:%S', showspikes: false,
        anchor: 'free', position: 0, showline: false },
      yaxis: { ...AXIS, domain: [BAND[1] + 0.06, 1], range: [0, 1.02], tickformat: '.0%', dtick: 0.25, fixedrange: true },
      shapes, annotations,
      uirevision: 'timeline',
    });
    Plotly.react(div, traces, layout, PLOT_CONFIG);
  }

  return {
    // Coalesce bursts (history load, several events) into one redraw per frame.
    draw(preds, segments) {
      last = { preds, segments };
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(render);
    },
    setRaw(on) { showRaw = on; render(); },
  };
}
