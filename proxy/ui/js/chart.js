// Time-series charts on the vendored uPlot (window.uPlot, MIT): a thin wrapper
// that sizes the chart to its container, follows resizes, and rebuilds the
// chart when the set of series changes (e.g. a new upstream appears).

import {h} from './dom.js';

/** The legend shows the values under the cursor; away from the chart, those of the latest point. */
function showLatestWhenIdle(u) {
  const points = u.data[0]?.length ?? 0;
  if (u.cursor.idx == null && points > 0) u.setLegend({idx: points - 1}, false);
}

export const COLORS = {
  hit: '#2da44e',
  stale: '#1b9aaa',
  revalidated: '#8250df',
  miss: '#d4a72c',
  bypass: '#8c959f',
  error: '#cf222e',
  ratio: '#0969da',
  hot: '#e16f24',
  disk: '#0969da',
};

/** Extra colours for series without a fixed one (upstreams). */
export const PALETTE = ['#0969da', '#e16f24', '#2da44e', '#8250df', '#cf222e', '#1b9aaa', '#bf3989', '#6e7781'];

function chartHeight() {
  return window.matchMedia('(max-width: 700px)').matches ? 200 : 260;
}

/**
 * A chart in `container`. `build(data)` returns uPlot options without width and
 * height; `key(data)` names the series layout: when it changes the chart is rebuilt.
 * Returns {update(data, layoutKey, optionsBuilder), destroy()}.
 */
export function timeChart(container, label) {
  const box = h('div', {class: 'chart', role: 'img', 'aria-label': label});
  container.append(box);
  let plot = null;
  let layout = null;

  const observer = new ResizeObserver(() => {
    if (plot) plot.setSize({width: Math.max(200, box.clientWidth), height: chartHeight()});
  });
  observer.observe(box);

  return {
    element: box,
    /** data: uPlot's [xs, ys...]; layoutKey: a string; build: () => uPlot options. */
    update(data, layoutKey, build) {
      if (!window.uPlot) return;
      if (plot && layout === layoutKey) {
        plot.setData(data);
      } else {
        if (plot) plot.destroy();
        layout = layoutKey;
        const options = {width: Math.max(200, box.clientWidth), height: chartHeight(), ...build()};
        options.hooks = {...options.hooks, setCursor: [showLatestWhenIdle]};
        plot = new window.uPlot(options, data, box);
      }
      showLatestWhenIdle(plot);
    },
    destroy() {
      observer.disconnect();
      if (plot) plot.destroy();
      plot = null;
    },
  };
}

/** An axis whose tick labels are formatted by `fmt`. */
export function axis(scale, fmt, extra = {}) {
  return {scale, values: (u, ticks) => ticks.map((v) => (v === null ? '' : fmt(v))), size: 60, ...extra};
}

/** A line series. */
export function line(label, color, scale, fmt, extra = {}) {
  return {
    label,
    stroke: color,
    width: 2,
    scale,
    spanGaps: false,
    value: (u, v) => (v === null || v === undefined ? '–' : fmt(v)),
    ...extra,
  };
}

/** A scale range from 0 to a little above the largest value (at least `floor`, also when there is no data). */
export function zeroBased(floor) {
  return (u, min, max) => [0, Math.max(floor, Number.isFinite(max) ? max * 1.1 : floor)];
}
