// One cached URL: GET /cache/entry?url=…, every Vary variant with its
// metadata and headers; purge / soft purge; the body on request.

import {api} from '../api.js';
import {errorText, fmtBytes, fmtNumber, fmtTime, h, replace, table} from '../dom.js';
import {purgeUrl, staleText, stateBadge, tagList, ttlText} from './cache.js';

export const title = 'Cache entry';

function facts(entry) {
  const rows = [
    ['Status', h('span', {}, String(entry.status), ' ', stateBadge(entry))],
    ['Size', fmtBytes(entry.size)],
    ['Tier', entry.tier],
    ['Stored', fmtTime(entry.storedAt)],
    ['Fresh until', `${fmtTime(entry.freshUntil)} (${ttlText(entry)})`],
    ['Stale until', `${fmtTime(entry.staleUntil)} (window ${staleText(entry)})`],
    ['Tags', tagList(entry.tags)],
    ['Key', h('code', {}, entry.hash)],
  ];
  return h('dl', {class: 'facts'}, rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function mount(root, params, ctx) {
  const url = params.get('url') ?? '';
  const body = h('div', {id: 'entry-details'}, h('p', {class: 'muted'}, 'loading…'));
  const back = h('a', {href: '#/cache', class: 'back'}, '← Cache');
  root.append(back, h('h1', {class: 'break'}, url || 'No URL given'), body);
  if (!url) return;

  async function purge(soft) {
    const res = await purgeUrl(url, soft);
    if (!ctx.alive()) return;
    if (!res.ok) {
      ctx.flash(`Purge failed: ${errorText(res)}`, 'error');
      return;
    }
    ctx.flash(`${soft ? 'Soft-purged' : 'Purged'} ${fmtNumber(res.data?.purged ?? 0)} variant(s) of ${url}`, 'ok');
    // After a hard purge there is nothing left to show: back to the list, filtered on this URL.
    if (soft) load();
    else ctx.navigate('cache', {prefix: url});
  }

  /**
   * Whether anything is stored for the URL, asked through the listing (always 200),
   * so that a URL that is not cached does not show up as a failed request.
   */
  async function isCached() {
    const res = await api('GET', '/cache/entries', {query: {prefix: url, limit: 100}});
    if (!res.ok) return true; // let the detail request report the problem
    return (res.data?.entries ?? []).some((e) => e.url === url) || Boolean(res.data?.cursor);
  }

  async function showBody(button, box, hash) {
    button.disabled = true;
    const res = await api('GET', '/cache/entry', {query: {url, body: true}});
    if (!ctx.alive()) return;
    button.disabled = false;
    if (!res.ok) {
      replace(box, h('p', {class: 'notice error'}, `Cannot load the body: ${errorText(res)}`));
      return;
    }
    const variant = (res.data?.entries ?? []).find((e) => e.hash === hash);
    if (!variant) {
      replace(box, h('p', {class: 'notice'}, 'This variant is no longer stored.'));
      return;
    }
    replace(box,
      h('p', {class: 'muted'}, variant.bodyEncoding === 'base64' ? 'Binary body, base64:' : 'Body:'),
      h('pre', {class: 'code body'}, variant.body ?? ''));
  }

  function showGone() {
    replace(body, h('p', {class: 'notice', id: 'entry-gone'}, 'Nothing is cached for this URL (any more).'));
  }

  async function load() {
    const cached = await isCached();
    if (!ctx.alive()) return;
    if (!cached) {
      showGone();
      return;
    }
    const res = await api('GET', '/cache/entry', {query: {url}});
    if (!ctx.alive()) return;
    const actions = h('div', {class: 'actions'},
      h('button', {type: 'button', class: 'danger', id: 'entry-purge', onclick: () => purge(false)}, 'Purge'),
      h('button', {type: 'button', id: 'entry-soft-purge', onclick: () => purge(true)}, 'Soft purge'));
    if (res.status === 404) {
      showGone();
      return;
    }
    if (!res.ok) {
      replace(body, h('p', {class: 'notice error'}, `Cannot load the entry: ${errorText(res)}`));
      return;
    }
    const variants = res.data?.entries ?? [];
    replace(body,
      h('div', {class: 'page-head'},
        h('p', {class: 'muted'}, `${variants.length} variant${variants.length === 1 ? '' : 's'} `
          + '(one per combination of the request headers the origin varies on). Purge removes them all.'),
        actions),
      variants.map((entry, i) => {
        const bodyBox = h('div', {});
        const bodyButton = h('button', {type: 'button', class: 'small',
          onclick: () => showBody(bodyButton, bodyBox, entry.hash)}, 'Show body');
        return h('section', {class: 'panel variant', dataset: {hash: entry.hash}},
          h('h2', {}, `Variant ${i + 1}`),
          facts(entry),
          h('h3', {}, 'Response headers'),
          table(['Name', 'Value'], (entry.headers ?? []).map((hd) => [h('code', {}, hd.name), h('span', {class: 'break'}, hd.value)]),
            {className: 'grid headers', empty: 'No headers stored.'}),
          h('div', {class: 'actions'}, bodyButton),
          bodyBox);
      }));
  }

  load();
}
