// Rolling probability timeline: one line per genre over the last 3 minutes.

import { AXIS, PLOT_CONFIG, baseLayout, fmtTime, genreColor } from './theme.js';
import { TIMELINE_SECONDS } from './store.js';

// Grows from the first window up to TIMELINE_SECONDS, then scrolls.
function xRange(tStart, tEnd) {
  const start = Math.max(tStart, tEnd - TIMELINE_SECONDS);
  return [start, Math.max(tEnd, start + 30)];
}

function timeTicks([a, b]) {
  const step = (b - a) > 90 ? 30 : 10;
  const vals = [];
  for (let v = Math.ceil(a / step) * step; v <= b; v += step) vals.push(v);
  return { tickvals: vals, ticktext: vals.map(fmtTime) };
}

export function createTimeline(div) {
  let labelsKey = null;
  let maxPoints = 400;
  let firstT = 0;

  function layout(tStart, tEnd) {
    const range = xRange(tStart, tEnd);
    return baseLayout({
      margin: { l: 40, r: 8, t: 26, b: 26 },
      showlegend: true,
      legend: { orientation: 'h', x: 0, y: 1.02, yanchor: 'bottom', font: { size: 11 }, bgcolor: 'rgba(0,0,0,0)',
        itemclick: 'toggleothers', itemwidth: 30, tracegroupgap: 0 },
      hovermode: 'x unified',
      xaxis: { ...AXIS, range, autorange: false, ...timeTicks(range), showspikes: false },
      yaxis: { ...AXIS, range: [0, 1.02], tickformat: '.0%', dtick: 0.25, fixedrange: true },
    });
  }

  function draw(preds, hop) {
    maxPoints = Math.ceil(TIMELINE_SECONDS / Math.max(0.25, hop || 1)) + 4;
    const labels = preds.length ? preds[preds.length - 1].labels : [];
    labelsKey = labels.join();
    const xs = preds.map((p) => p.t);
    const traces = labels.map((label, i) => ({
      type: 'scatter', mode: 'lines', name: label, x: xs, y: preds.map((p) => p.probs[i]),
      line: { color: genreColor(i), width: 2 },
      hovertemplate: `${label} %{y:.0%}<extra></extra>`,
    }));
    firstT = xs.length ? xs[0] : 0;
    const tEnd = xs.length ? xs[xs.length - 1] : 0;
    Plotly.react(div, traces, layout(firstT, tEnd), PLOT_CONFIG);
  }

  function append(p, preds, hop) {
    if (p.labels.join() !== labelsKey || !div.data || div.data.length !== p.labels.length) {
      draw(preds, hop);
      return;
    }
    // Move the window in place, then let extendTraces do the single redraw.
    const range = xRange(firstT, p.t);
    Object.assign(div.layout.xaxis, { range, autorange: false, ...timeTicks(range) });
    Plotly.extendTraces(div, { x: p.probs.map(() => [p.t]), y: p.probs.map((v) => [v]) },
      p.probs.map((_, i) => i), maxPoints);
  }

  return { draw, append };
}
