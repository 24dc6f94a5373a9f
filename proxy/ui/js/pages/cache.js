// Cache browser: GET /cache/entries filtered by URL prefix, host and tag,
// paginated with the server's cursor; purge, soft purge, and "purge
// everything" behind a dry run and an in-page confirmation.

import {api} from '../api.js';
import {errorText, fmtBytes, fmtDuration, fmtNumber, h, replace, secondsUntil, table} from '../dom.js';

export const title = 'Cache';

const PAGE_SIZE = 50;

/** fresh / stale / soft-purged / expired, from the entry's times. */
export function entryState(entry, now = Date.now()) {
  if (entry.softPurged) return 'soft-purged';
  const fresh = secondsUntil(entry.freshUntil, now);
  if (fresh === null || fresh > 0) return 'fresh';
  const stale = secondsUntil(entry.staleUntil, now);
  return stale !== null && stale > 0 ? 'stale' : 'expired';
}

/** "4m 59s" while fresh, "expired 3s ago" after. */
export function ttlText(entry, now = Date.now()) {
  const left = secondsUntil(entry.freshUntil, now);
  if (left === null) return 'no expiry';
  return left > 0 ? fmtDuration(left) : `expired ${fmtDuration(-left)} ago`;
}

/** The stale window's length, and what is left of it when the entry is in it. */
export function staleText(entry, now = Date.now()) {
  const fresh = Date.parse(entry.freshUntil ?? '');
  const stale = Date.parse(entry.staleUntil ?? '');
  if (Number.isNaN(fresh) || Number.isNaN(stale) || stale <= fresh) return 'none';
  const length = fmtDuration((stale - fresh) / 1000);
  if (now >= fresh && now < stale) return `${length} (${fmtDuration((stale - now) / 1000)} left)`;
  return length;
}

export function tagList(tags) {
  return h('span', {class: 'tags'}, (tags ?? []).map((t) => h('span', {class: 'tag'}, t)));
}

export function stateBadge(entry) {
  const state = entryState(entry);
  return h('span', {class: `badge ${state}`}, state);
}

/** Hard purge of one URL (all its variants) or soft purge (mark stale). */
export async function purgeUrl(url, soft) {
  return soft
    ? api('POST', '/cache/purge', {json: {urls: [url], soft: true}})
    : api('DELETE', '/cache/entry', {query: {url}});
}

export function mount(root, params, ctx) {
  const filters = {prefix: params.get('prefix') ?? '', host: params.get('host') ?? '', tag: params.get('tag') ?? ''};
  const hasFilter = Boolean(filters.prefix || filters.host || filters.tag);
  // Cursors of the pages seen so far: cursors[i] fetches page i (page 0 has none).
  const cursors = [null];
  let pageIndex = 0;

  const inputs = {
    prefix: h('input', {id: 'cache-prefix', name: 'prefix', type: 'search', value: filters.prefix,
      placeholder: 'http://api.example.com/v1/', autocomplete: 'off', spellcheck: 'false'}),
    host: h('input', {id: 'cache-host', name: 'host', type: 'search', value: filters.host,
      placeholder: 'api.example.com', autocomplete: 'off', spellcheck: 'false'}),
    tag: h('input', {id: 'cache-tag', name: 'tag', type: 'search', value: filters.tag,
      placeholder: 'product-42', autocomplete: 'off', spellcheck: 'false'}),
  };
  const form = h('form', {class: 'filters', id: 'cache-search', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    ctx.navigate('cache', {prefix: inputs.prefix.value.trim(), host: inputs.host.value.trim(), tag: inputs.tag.value.trim()});
  }},
  h('label', {}, h('span', {}, 'URL prefix'), inputs.prefix),
  h('label', {}, h('span', {}, 'Host'), inputs.host),
  h('label', {}, h('span', {}, 'Tag'), inputs.tag),
  h('div', {class: 'filter-actions'},
    h('button', {type: 'submit', class: 'primary'}, 'Search'),
    hasFilter ? h('a', {href: '#/cache', class: 'button'}, 'Clear') : null));

  const listBox = h('div', {id: 'cache-list', 'aria-live': 'polite'});
  const pager = h('div', {class: 'pager'});
  const purgeMatching = h('button', {type: 'button', id: 'purge-matching', hidden: !hasFilter,
    onclick: () => purgeSelection(false)}, 'Purge all matching…');
  const purgeAll = h('button', {type: 'button', id: 'purge-everything', class: 'danger',
    onclick: () => purgeSelection(true)}, 'Purge everything…');

  root.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'Cache'),
      h('div', {class: 'actions'}, purgeMatching, purgeAll)),
    form,
    listBox,
    pager);

  function row(entry) {
    const purgeButton = (soft) => h('button', {
      type: 'button', class: soft ? 'small' : 'small danger', dataset: {action: soft ? 'soft-purge' : 'purge'},
      title: soft ? 'Mark stale: still usable for stale-while-revalidate, stale-if-error and revalidation'
        : 'Remove this URL (all its variants)',
      onclick: async (event) => {
        event.currentTarget.disabled = true;
        const res = await purgeUrl(entry.url, soft);
        if (!ctx.alive()) return;
        if (res.ok) {
          ctx.flash(`${soft ? 'Soft-purged' : 'Purged'} ${fmtNumber(res.data?.purged ?? 0)} `
            + `entr${res.data?.purged === 1 ? 'y' : 'ies'} of ${entry.url}`, 'ok');
        } else {
          ctx.flash(`Purge failed: ${errorText(res)}`, 'error');
        }
        load();
      },
    }, soft ? 'Soft purge' : 'Purge');
    return h('tr', {dataset: {url: entry.url, hash: entry.hash}},
      h('td', {}, h('span', {class: 'status-code'}, String(entry.status)), ' ', stateBadge(entry)),
      h('td', {class: 'num'}, fmtBytes(entry.size)),
      h('td', {}, entry.tier),
      h('td', {class: 'num'}, ttlText(entry)),
      h('td', {}, staleText(entry)),
      h('td', {}, tagList(entry.tags)),
      h('td', {class: 'url'}, h('a', {href: ctx.href('cache/entry', {url: entry.url})}, entry.url)),
      h('td', {class: 'row-actions'}, purgeButton(false), purgeButton(true)));
  }

  async function load() {
    const query = {...filters, limit: PAGE_SIZE, cursor: cursors[pageIndex]};
    const res = await api('GET', '/cache/entries', {query});
    if (!ctx.alive()) return;
    if (!res.ok) {
      replace(listBox, h('p', {class: 'notice error'}, `Cannot list the cache: ${errorText(res)}`));
      replace(pager);
      return;
    }
    const entries = res.data?.entries ?? [];
    cursors.length = pageIndex + 1;
    if (res.data?.cursor) cursors.push(res.data.cursor);
    replace(listBox, table(
      ['Status', 'Size', 'Tier', 'TTL left', 'Stale window', 'Tags', 'URL', ''],
      entries.map(row),
      {empty: hasFilter ? 'No cached entry matches.' : 'The cache is empty.', className: 'grid cache-table'}));
    replace(pager,
      h('button', {type: 'button', id: 'cache-prev', disabled: pageIndex === 0,
        onclick: () => { pageIndex -= 1; load(); }}, '← Previous'),
      h('span', {class: 'muted'}, `page ${pageIndex + 1} · ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}`),
      h('button', {type: 'button', id: 'cache-next', disabled: cursors.length <= pageIndex + 1,
        onclick: () => { pageIndex += 1; load(); }}, 'Next →'));
  }

  /** Purge everything, or everything matching the current filters: dry run, confirm, purge. */
  async function purgeSelection(everything) {
    const selector = everything ? {everything: true} : {
      prefixes: filters.prefix ? [filters.prefix] : [],
      hosts: filters.host ? [filters.host] : [],
      tags: filters.tag ? [filters.tag] : [],
    };
    const dry = await api('POST', '/cache/purge', {json: {...selector, dryRun: true}});
    if (!ctx.alive()) return;
    if (!dry.ok) {
      ctx.flash(`Cannot count the entries: ${errorText(dry)}`, 'error');
      return;
    }
    const count = dry.data?.matched ?? 0;
    if (count === 0) {
      ctx.flash(everything ? 'Nothing to purge: the cache is empty.' : 'Nothing to purge: no entry matches this search.', 'info');
      return;
    }
    const what = everything ? 'everything in the cache' : 'the entries matching this search';
    const soft = h('input', {type: 'checkbox', id: 'purge-soft'});
    const confirmed = await ctx.confirm({
      title: everything ? 'Purge everything?' : 'Purge matching entries?',
      body: h('div', {},
        h('p', {id: 'purge-count'}, `This purges ${what}: `, h('strong', {}, `${fmtNumber(count)} entr${count === 1 ? 'y' : 'ies'}`),
          ' (counted by a dry run just now). The origin will see the next request for each of them.'),
        h('label', {class: 'check'}, soft, ' Soft purge: mark stale instead of removing')),
      confirmLabel: `Purge ${fmtNumber(count)}`,
      danger: true,
    });
    if (!confirmed || !ctx.alive()) return;
    const res = await api('POST', '/cache/purge', {json: {...selector, soft: soft.checked}});
    if (!ctx.alive()) return;
    if (res.ok) ctx.flash(`${soft.checked ? 'Soft-purged' : 'Purged'} ${fmtNumber(res.data?.purged ?? 0)} entries.`, 'ok');
    else ctx.flash(`Purge failed: ${errorText(res)}`, 'error');
    pageIndex = 0;
    load();
  }

  load();
}
