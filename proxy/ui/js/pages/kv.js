// KV browser: keys are '/'-separated parts (users/42/profile). A folder view
// lists the items under a prefix (GET /kv/items?prefix=…, whole parts) and
// groups them by their next part, so the operator walks the tree part by part.

import {api, kvItemPath} from '../api.js';
import {errorText, fmtDuration, fmtNumber, h, replace, secondsUntil, table} from '../dom.js';
import {preview} from '../json.js';

export const title = 'KV';

const PAGE_SIZE = 1000;

/** Breadcrumb links for the parts of `key` ("root / a / b"); the last part is plain text unless `linkLast`. */
export function breadcrumbs(key, ctx, linkLast = false) {
  const parts = key ? key.split('/') : [];
  const crumbs = [parts.length || linkLast ? h('a', {href: ctx.href('kv')}, 'root') : h('span', {}, 'root')];
  parts.forEach((part, i) => {
    const prefix = parts.slice(0, i + 1).join('/');
    crumbs.push(h('span', {class: 'sep'}, '/'));
    crumbs.push(i < parts.length - 1 || linkLast ? h('a', {href: ctx.href('kv', {prefix})}, part) : h('span', {}, part));
  });
  return h('nav', {class: 'crumbs', 'aria-label': 'Key path'}, crumbs);
}

/** Splits the items under `prefix` into child folders (with counts) and leaf items. */
export function group(items, prefix) {
  const folders = new Map();
  const leaves = [];
  let self = null;
  for (const item of items) {
    if (item.key === prefix) {
      self = item;
      continue;
    }
    const rest = prefix ? item.key.slice(prefix.length + 1) : item.key;
    const slash = rest.indexOf('/');
    if (slash === -1) leaves.push(item);
    else {
      const name = rest.slice(0, slash);
      folders.set(name, (folders.get(name) ?? 0) + 1);
    }
  }
  return {self, folders, leaves};
}

function expiresText(item) {
  const left = secondsUntil(item.expiresAt);
  return left === null ? 'never' : `in ${fmtDuration(left)}`;
}

export function mount(root, params, ctx) {
  const prefix = (params.get('prefix') ?? '').replace(/^\/+|\/+$/g, '');
  const items = [];
  let cursor = null;
  let total = null;

  const listBox = h('div', {id: 'kv-list'}, h('p', {class: 'muted'}, 'loading…'));
  const more = h('div', {class: 'pager'});

  // New item.
  const keyInput = h('input', {id: 'kv-new-key', name: 'key', required: true, autocomplete: 'off', spellcheck: 'false',
    value: prefix ? `${prefix}/` : '', placeholder: 'users/42/profile'});
  const valueInput = h('textarea', {id: 'kv-new-value', name: 'value', rows: 4, spellcheck: 'false', class: 'code'}, '{}');
  const ttlInput = h('input', {id: 'kv-new-ttl', name: 'ttl', type: 'number', min: 1, step: 1, inputmode: 'numeric',
    placeholder: 'never expires'});
  const newError = h('p', {class: 'notice error', id: 'kv-new-error', role: 'alert', hidden: true});
  const newForm = h('form', {class: 'panel form', id: 'kv-new', onsubmit: create},
    h('h2', {}, 'New item'),
    h('label', {for: 'kv-new-key'}, 'Key'), keyInput,
    h('label', {for: 'kv-new-value'}, 'Value (JSON)'), valueInput,
    h('label', {for: 'kv-new-ttl'}, 'TTL in seconds (empty: never expires)'), ttlInput,
    newError,
    h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary', id: 'kv-create'}, 'Create')));

  root.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'KV'), breadcrumbs(prefix, ctx)),
    h('div', {class: 'two-col wide-first'},
      h('section', {class: 'panel'}, h('h2', {}, prefix ? `Under ${prefix}/` : 'All keys'), listBox, more),
      newForm));

  function render() {
    const {self, folders, leaves} = group(items, prefix);
    const rows = [];
    if (self) {
      rows.push(h('tr', {class: 'self'},
        h('td', {}, h('a', {href: ctx.href('kv/item', {key: self.key})}, h('span', {class: 'icon'}, '•'), ` ${prefix} (this key itself)`)),
        h('td', {class: 'code preview'}, preview(self.value)),
        h('td', {}, expiresText(self))));
    }
    for (const [name, count] of [...folders].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const child = prefix ? `${prefix}/${name}` : name;
      rows.push(h('tr', {class: 'folder', dataset: {prefix: child}},
        h('td', {}, h('a', {href: ctx.href('kv', {prefix: child})}, h('span', {class: 'icon'}, '▸'), ` ${name}/`)),
        h('td', {class: 'muted'}, `${fmtNumber(count)} item${count === 1 ? '' : 's'}${cursor ? ' or more' : ''}`),
        h('td', {})));
    }
    for (const item of leaves) {
      const name = prefix ? item.key.slice(prefix.length + 1) : item.key;
      rows.push(h('tr', {class: 'leaf', dataset: {key: item.key}},
        h('td', {}, h('a', {href: ctx.href('kv/item', {key: item.key})}, name)),
        h('td', {class: 'code preview'}, preview(item.value)),
        h('td', {}, expiresText(item))));
    }
    replace(listBox,
      h('p', {class: 'muted'}, `${fmtNumber(total ?? items.length)} item${total === 1 ? '' : 's'} under this prefix`),
      table(['Key', 'Value', 'Expires'], rows, {className: 'grid kv-table', empty: 'No keys here.'}));
    replace(more, cursor
      ? h('button', {type: 'button', id: 'kv-more', onclick: load}, `Load more (${fmtNumber(items.length)} of ${fmtNumber(total)} read)`)
      : null);
  }

  async function load() {
    const res = await api('GET', '/kv/items', {query: {prefix, limit: PAGE_SIZE, cursor}});
    if (!ctx.alive()) return;
    if (!res.ok) {
      replace(listBox, h('p', {class: 'notice error'}, `Cannot list the keys: ${errorText(res)}`));
      return;
    }
    items.push(...(res.data?.items ?? []));
    cursor = res.data?.cursor ?? null;
    total = res.data?.total ?? items.length;
    render();
  }

  async function create(event) {
    event.preventDefault();
    newError.hidden = true;
    const key = keyInput.value.trim().replace(/^\/+|\/+$/g, '');
    const text = valueInput.value.trim();
    const fail = (message) => {
      newError.textContent = message;
      newError.hidden = false;
    };
    if (!key) return fail('Give the item a key.');
    try {
      JSON.parse(text);
    } catch (err) {
      return fail(`The value is not valid JSON: ${err.message}`);
    }
    const ttl = ttlInput.value.trim();
    if (ttl && !/^[1-9][0-9]*$/.test(ttl)) return fail('The TTL is a whole number of seconds, at least 1.');
    // The value's text goes out as typed, so numbers keep their spelling.
    const body = `{"value":${text}${ttl ? `,"ttlSeconds":${ttl}` : ''}}`;
    const res = await api('PUT', kvItemPath(key), {body, headers: {'If-None-Match': '*'}});
    if (!ctx.alive()) return;
    if (res.status === 412) return fail(`"${key}" already exists: open it to edit it.`);
    if (!res.ok) return fail(`Not created: ${errorText(res)}`);
    ctx.flash(`Created ${key}`, 'ok');
    ctx.navigate('kv/item', {key});
  }

  load();
}
