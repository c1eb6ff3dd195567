// Bar chart of every genre probability of the latest window.

import { AXIS, PLOT_CONFIG, UNCERTAIN_COLOR, baseLayout, genreColor } from './theme.js';

export function createProbsChart(div) {
  let labelsKey = null;

  function layout(labels) {
    return baseLayout({
      margin: { l: 78, r: 40, t: 4, b: 22 },
      bargap: 0.28,
      xaxis: { ...AXIS, range: [0, 1], tickformat: '.0%', dtick: 0.25, fixedrange: true },
      yaxis: { ...AXIS, autorange: 'reversed', fixedrange: true, tickfont: { size: 12 }, categoryorder: 'array', categoryarray: labels },
      transition: { duration: 250, easing: 'cubic-in-out' },
    });
  }

  function draw(labels, probs, top) {
    const colors = labels.map((l) => (top == null ? UNCERTAIN_COLOR : l === top ? genreColor(l) : `${genreColor(l)}99`));
    const trace = {
      type: 'bar', orientation: 'h', x: probs, y: labels,
      marker: { color: colors, line: { width: 0 } },
      text: probs.map((v) => `${(v * 100).toFixed(0)}%`), textposition: 'outside', cliponaxis: false,
      textfont: { size: 11, color: '#aab4c8' },
      hovertemplate: '%{y}: %{x:.1%}<extra></extra>',
    };
    const key = labels.join();
    if (key !== labelsKey) { // another model: a fresh plot, as a transition would tween the old bars' colours
      labelsKey = key;
      Plotly.newPlot(div, [trace], layout(labels), PLOT_CONFIG);
    } else {
      Plotly.react(div, [trace], div.layout, PLOT_CONFIG);
    }
  }

  return {
    reset(labels = []) {
      labelsKey = null;
      draw(labels, labels.map(() => 0), null);
    },
    // A window that is not music (talk, silence, noise) has no genre: its bars are shown greyed.
    update(p) {
      const none = p.top == null && p.content;
      const card = div.closest('.card');
      if (card) card.dataset.nogenre = none ? p.content : '';
      const note = card && card.querySelector('.probs-note');
      if (note) note.textContent = none ? `· not used: ${p.content}` : '';
      draw(p.labels, p.probs, p.top);
    },
  };
}
