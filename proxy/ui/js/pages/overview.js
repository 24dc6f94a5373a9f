// Overview: the last hour from GET /stats/series (360 points of 10 s, oldest
// first), refreshed every 10 s. Request counts and evictions are per
// interval; tier entries and bytes are values at the end of each interval.

import {api} from '../api.js';
import {COLORS, PALETTE, axis, line, timeChart, zeroBased} from '../chart.js';
import {card, errorText, fmtBytes, fmtNumber, fmtPercent, h, replace, table} from '../dom.js';

export const title = 'Overview';

const REFRESH_MS = 10_000;
const STATUSES = ['hit', 'stale', 'revalidated', 'miss', 'bypass', 'error'];

/** Hit ratio as `aside stats` counts it: (hit + stale) of the requests that looked in the cache. */
export function hitRatio(counts) {
  const looked = STATUSES.filter((s) => s !== 'bypass').reduce((sum, s) => sum + (counts[s] ?? 0), 0);
  return looked > 0 ? ((counts.hit ?? 0) + (counts.stale ?? 0)) / looked : null;
}

function sumCounts(points) {
  const total = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const p of points) for (const s of STATUSES) total[s] += p.requests?.[s] ?? 0;
  return total;
}

const fmtRate = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const fmtMs = (v) => `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ms`;

export function mount(root, params, ctx) {
  const updated = h('span', {class: 'muted', id: 'overview-updated'}, 'loading…');
  const notice = h('p', {class: 'notice', hidden: true});
  const cards = h('div', {class: 'cards', id: 'overview-cards'});

  const requestsPanel = h('section', {class: 'panel'}, h('h2', {}, 'Requests per second by cache status, and hit ratio'));
  const latencyPanel = h('section', {class: 'panel'}, h('h2', {}, 'Origin latency (p50 solid, p99 dashed)'));
  const upstreamBox = h('div', {id: 'overview-upstreams'});
  const entriesPanel = h('section', {class: 'panel'}, h('h2', {}, 'Store entries'));
  const bytesPanel = h('section', {class: 'panel'}, h('h2', {}, 'Store bytes'));

  root.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'Overview'), updated),
    notice,
    cards,
    requestsPanel,
    h('div', {class: 'two-col'}, latencyPanel, h('section', {class: 'panel'}, h('h2', {}, 'Upstreams'), upstreamBox)),
    h('div', {class: 'two-col'}, entriesPanel, bytesPanel));

  const requestsChart = timeChart(requestsPanel, 'Requests per second by cache status and hit ratio over the last hour');
  requestsChart.element.id = 'chart-requests';
  const latencyChart = timeChart(latencyPanel, 'Origin latency per upstream over the last hour');
  const entriesChart = timeChart(entriesPanel, 'Hot and disk tier entries over the last hour');
  const bytesChart = timeChart(bytesPanel, 'Hot and disk tier bytes over the last hour');

  function draw(series) {
    const points = series.points ?? [];
    const interval = series.intervalSeconds || 10;
    const xs = points.map((p) => p.t);
    const last = points.at(-1);

    notice.hidden = points.length > 0;
    notice.textContent = 'No completed interval yet: the first point appears within '
      + `${interval} s of start, then one every ${interval} s.`;

    // Figures.
    const hour = sumCounts(points);
    const hourRatio = hitRatio(hour);
    const lastRatio = last ? hitRatio(last.requests ?? {}) : null;
    const lastRps = last ? STATUSES.reduce((s, k) => s + (last.requests?.[k] ?? 0), 0) / interval : null;
    let originErrors = 0;
    for (const p of points) for (const u of Object.values(p.upstreams ?? {})) originErrors += u.errors ?? 0;
    const evictions = {hot: 0, disk: 0};
    for (const p of points) {
      evictions.hot += p.tiers?.hot?.evictions ?? 0;
      evictions.disk += p.tiers?.disk?.evictions ?? 0;
    }
    const tier = (name) => last?.tiers?.[name];
    replace(cards,
      card('Requests/s', lastRps === null ? '–' : fmtRate(lastRps), {testid: 'rps-last', hint: `last ${interval} s`}),
      card('Hit ratio', fmtPercent(lastRatio), {testid: 'hit-ratio-last', hint: `last ${interval} s`}),
      card('Hit ratio, last hour', fmtPercent(hourRatio), {testid: 'hit-ratio-hour',
        hint: `${fmtNumber(hour.hit + hour.stale)} of ${fmtNumber(STATUSES.reduce((s, k) => s + hour[k], 0) - hour.bypass)}`}),
      card('Origin errors', fmtNumber(originErrors), {testid: 'origin-errors-hour', hint: 'last hour'}),
      card('Hot tier', tier('hot') ? `${fmtNumber(tier('hot').entries)} · ${fmtBytes(tier('hot').bytes)}` : '–',
        {testid: 'hot-tier', hint: `entries · bytes; ${fmtNumber(evictions.hot)} evicted in the last hour`}),
      card('Disk tier', tier('disk') ? `${fmtNumber(tier('disk').entries)} · ${fmtBytes(tier('disk').bytes)}` : '–',
        {testid: 'disk-tier', hint: `entries · bytes; ${fmtNumber(evictions.disk)} evicted in the last hour`}));

    // Requests per second by status, and the hit ratio on a 0–100 % axis.
    const ratios = points.map((p) => {
      const r = hitRatio(p.requests ?? {});
      return r === null ? null : r * 100;
    });
    requestsChart.update(
      [xs, ...STATUSES.map((s) => points.map((p) => (p.requests?.[s] ?? 0) / interval)), ratios],
      'requests',
      () => ({
        series: [{}, ...STATUSES.map((s) => line(s, COLORS[s], 'rps', fmtRate)),
          line('hit ratio', COLORS.ratio, '%', (v) => `${v.toFixed(1)} %`, {width: 2.5, dash: [8, 4]})],
        scales: {x: {time: true}, '%': {range: [0, 100]}, rps: {range: zeroBased(1)}},
        axes: [{}, axis('rps', fmtRate, {label: 'req/s'}),
          axis('%', (v) => `${v}%`, {side: 1, grid: {show: false}, label: 'hit ratio'})],
      }));
    const drawnRatios = ratios.filter((r) => r !== null);
    // Plain figures on the chart element, for tests and for curious operators with devtools.
    requestsChart.element.dataset.points = String(points.length);
    requestsChart.element.dataset.lastT = last ? String(last.t) : '';
    requestsChart.element.dataset.hitRatioMax = drawnRatios.length ? String(Math.max(...drawnRatios)) : '';

    // Origin latency, one p50 and one p99 line per upstream.
    const upstreams = [...new Set(points.flatMap((p) => Object.keys(p.upstreams ?? {})))].sort();
    const latencyData = [xs];
    const latencySeries = [{}];
    upstreams.forEach((name, i) => {
      const color = PALETTE[i % PALETTE.length];
      latencyData.push(points.map((p) => p.upstreams?.[name]?.p50Ms ?? null));
      latencyData.push(points.map((p) => p.upstreams?.[name]?.p99Ms ?? null));
      latencySeries.push(line(`${name} p50`, color, 'ms', fmtMs), line(`${name} p99`, color, 'ms', fmtMs, {dash: [6, 4]}));
    });
    latencyChart.update(latencyData, `latency:${upstreams.join(',')}`, () => ({
      series: latencySeries,
      scales: {x: {time: true}, ms: {range: zeroBased(1)}},
      axes: [{}, axis('ms', (v) => `${v}`, {label: 'ms'})],
    }));

    // Upstream table: last interval and last hour.
    const rows = upstreams.map((name) => {
      const lastPoint = last?.upstreams?.[name];
      let requests = 0;
      let errors = 0;
      for (const p of points) {
        requests += p.upstreams?.[name]?.requests ?? 0;
        errors += p.upstreams?.[name]?.errors ?? 0;
      }
      return h('tr', {dataset: {upstream: name}},
        h('td', {}, name),
        h('td', {class: 'num'}, lastPoint ? fmtRate((lastPoint.requests ?? 0) / interval) : '–'),
        h('td', {class: 'num'}, lastPoint?.p50Ms == null ? '–' : fmtMs(lastPoint.p50Ms)),
        h('td', {class: 'num'}, lastPoint?.p99Ms == null ? '–' : fmtMs(lastPoint.p99Ms)),
        h('td', {class: 'num'}, fmtNumber(requests)),
        h('td', {class: errors > 0 ? 'num bad' : 'num'}, fmtNumber(errors)));
    });
    replace(upstreamBox, table(
      ['Upstream', 'Req/s now', 'p50 now', 'p99 now', 'Requests (1 h)', 'Errors (1 h)'], rows,
      {empty: 'No origin traffic in the last hour.'}));

    // Tiers.
    const tierSeries = (fmt, scale) => [{}, line('hot', COLORS.hot, scale, fmt), line('disk', COLORS.disk, scale, fmt)];
    entriesChart.update(
      [xs, points.map((p) => p.tiers?.hot?.entries ?? null), points.map((p) => p.tiers?.disk?.entries ?? null)],
      'entries',
      () => ({series: tierSeries(fmtNumber, 'n'), scales: {x: {time: true}, n: {range: zeroBased(1)}},
        axes: [{}, axis('n', fmtNumber)]}));
    bytesChart.update(
      [xs, points.map((p) => p.tiers?.hot?.bytes ?? null), points.map((p) => p.tiers?.disk?.bytes ?? null)],
      'bytes',
      () => ({series: tierSeries(fmtBytes, 'b'), scales: {x: {time: true}, b: {range: zeroBased(1024)}},
        axes: [{}, axis('b', fmtBytes, {size: 70})]}));
  }

  let loading = false;
  async function load() {
    if (loading) return;
    loading = true;
    const res = await api('GET', '/stats/series');
    loading = false;
    if (!ctx.alive()) return;
    if (!res.ok) {
      notice.hidden = false;
      notice.classList.add('error');
      notice.textContent = `Cannot load the statistics: ${errorText(res)}`;
      updated.textContent = '';
      return;
    }
    notice.classList.remove('error');
    draw(res.data ?? {points: []});
    updated.textContent = `updated ${new Date().toLocaleTimeString('en-GB', {hour12: false})} · refreshes every 10 s`;
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => {
    clearInterval(timer);
    for (const chart of [requestsChart, latencyChart, entriesChart, bytesChart]) chart.destroy();
  };
}
