// Cluster: GET /cluster lists the nodes sharing purges through Redis, with
// their heartbeat and purge lag. A standalone node answers
// {"enabled": false, "nodes": []} (older servers: 404); neither is an error.

import {api} from '../api.js';
import {card, errorText, fmtDuration, fmtNumber, fmtTime, h, replace, secondsUntil, table} from '../dom.js';

export const title = 'Cluster';

const REFRESH_MS = 5_000;

export function mount(root, params, ctx) {
  const body = h('div', {id: 'cluster'}, h('p', {class: 'muted'}, 'loading…'));
  const updated = h('span', {class: 'muted'});
  root.append(h('div', {class: 'page-head'}, h('h1', {}, 'Cluster'), updated), body);

  function standalone() {
    replace(body, h('p', {class: 'notice', id: 'cluster-standalone'},
      h('strong', {}, 'Standalone node, no cluster configured. '),
      'Nodes share KV items and purges through Redis when their config has a ', h('code', {}, '[cluster]'), ' section.'));
  }

  async function load() {
    const res = await api('GET', '/cluster');
    if (!ctx.alive()) return;
    updated.textContent = `updated ${new Date().toLocaleTimeString('en-GB', {hour12: false})} · refreshes every 5 s`;
    if (res.status === 404 || (res.ok && res.data?.enabled === false)) {
      standalone();
      return;
    }
    if (res.status === 503) {
      replace(body, h('p', {class: 'notice error'}, 'Redis is unreachable: this node serves from its own tiers and queues '
        + `its purges until Redis answers again (${errorText(res)}).`));
      return;
    }
    if (!res.ok) {
      replace(body, h('p', {class: 'notice error'}, `Cannot load the cluster: ${errorText(res)}`));
      return;
    }
    const info = res.data;
    const nodes = info.nodes ?? [];
    const live = nodes.filter((n) => n.live).length;
    const rows = nodes.map((n) => {
      const age = n.lastHeartbeat ? -secondsUntil(n.lastHeartbeat) : null;
      return h('tr', {class: n.live ? '' : 'down', dataset: {node: n.id}},
        h('td', {}, n.id, n.id === info.node ? h('span', {class: 'badge fresh'}, 'this node') : null),
        h('td', {}, h('code', {}, n.address)),
        h('td', {}, h('span', {class: `badge ${n.live ? 'fresh' : 'expired'}`}, n.live ? 'live' : 'not live')),
        h('td', {title: fmtTime(n.lastHeartbeat)}, age === null ? 'never' : `${fmtDuration(age)} ago`),
        h('td', {}, h('code', {}, n.lastAppliedPurge || '–')),
        h('td', {class: n.lag > 0 ? 'num bad' : 'num'}, fmtNumber(n.lag)));
    });
    replace(body,
      h('div', {class: 'cards'},
        card('This node', info.node ?? '–'),
        card('Live nodes', `${live} of ${nodes.length}`),
        card('Last purge', fmtNumber(info.lastPurgeSeq), {hint: 'sequence in the shared stream'})),
      h('section', {class: 'panel'}, h('h2', {}, 'Nodes'),
        table(['Node', 'Proxy address', 'State', 'Heartbeat', 'Last applied purge', 'Purge lag'], rows,
          {empty: 'No node has reported yet.'})));
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}
