// Top keys and hosts: GET /stats/top, approximate heavy hitters (bounded
// memory on the server, so counts are estimates), refreshed every 10 s.

import {api} from '../api.js';
import {errorText, fmtNumber, fmtPercent, h, replace, table} from '../dom.js';

export const title = 'Top keys and hosts';

const REFRESH_MS = 10_000;
const LIMIT = 50;

function ratioCell(ratio) {
  return h('td', {class: 'ratio'},
    h('meter', {min: 0, max: 1, low: 0.5, high: 0.8, optimum: 1, value: ratio ?? 0}),
    h('span', {}, fmtPercent(ratio)));
}

function topTable(items, kind, ctx) {
  const rows = items.map((item) => h('tr', {},
    h('td', {class: 'url'}, kind === 'url'
      ? h('a', {href: ctx.href('cache/entry', {url: item.name}), title: 'Show what is cached for this URL'}, item.name)
      : h('a', {href: ctx.href('cache', {host: item.name}), title: 'Browse the cache for this host'}, item.name)),
    h('td', {class: 'num'}, fmtNumber(item.requests)),
    h('td', {class: 'num'}, fmtNumber(item.hits)),
    ratioCell(item.hitRatio)));
  return table([kind === 'url' ? 'URL' : 'Host', 'Requests', 'Hits', 'Hit ratio'], rows,
    {empty: 'No requests counted yet.'});
}

export function mount(root, params, ctx) {
  const updated = h('span', {class: 'muted'}, 'loading…');
  const error = h('p', {class: 'notice error', hidden: true});
  const urls = h('div', {id: 'top-urls'});
  const hosts = h('div', {id: 'top-hosts'});
  root.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'Top keys and hosts'), updated),
    h('p', {class: 'muted'}, 'The most requested URLs and hosts since start, with their hit ratio. '
      + 'Counts are approximate (heavy hitters kept in bounded memory).'),
    error,
    h('div', {class: 'two-col top-lists'},
      h('section', {class: 'panel'}, h('h2', {}, 'URLs'), urls),
      h('section', {class: 'panel'}, h('h2', {}, 'Hosts'), hosts)));

  async function load() {
    const res = await api('GET', '/stats/top', {query: {limit: LIMIT}});
    if (!ctx.alive()) return;
    error.hidden = res.ok;
    if (!res.ok) {
      error.textContent = `Cannot load the top lists: ${errorText(res)}`;
      return;
    }
    replace(urls, topTable(res.data?.urls ?? [], 'url', ctx));
    replace(hosts, topTable(res.data?.hosts ?? [], 'host', ctx));
    updated.textContent = `updated ${new Date().toLocaleTimeString('en-GB', {hour12: false})} · refreshes every 10 s`;
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}
