// One KV item: view and edit its JSON value and TTL, delete it.
//
// Saving is a compare-and-swap: the PUT carries `If-Match` with the version
// that was read, so an edit never overwrites a change made meanwhile by
// someone else (the server answers 412 and the page says so).

import {api, kvItemPath} from '../api.js';
import {errorText, fmtDuration, fmtTime, h, replace, secondsUntil} from '../dom.js';
import {memberText, prettyJson} from '../json.js';
import {breadcrumbs} from './kv.js';

export const title = 'KV item';

export function mount(root, params, ctx) {
  const key = (params.get('key') ?? '').replace(/^\/+|\/+$/g, '');
  const parent = key.includes('/') ? key.slice(0, key.lastIndexOf('/')) : '';
  const body = h('div', {id: 'kv-item'}, h('p', {class: 'muted'}, 'loading…'));
  root.append(
    h('div', {class: 'page-head'}, h('h1', {class: 'break'}, key || 'No key given'), breadcrumbs(key, ctx)),
    body);
  if (!key) return;

  /** The version the editor's text is based on; sent as If-Match. */
  let version = null;

  const valueInput = h('textarea', {id: 'kv-value', rows: 14, spellcheck: 'false', class: 'code', 'aria-label': 'Value (JSON)'});
  const ttlInput = h('input', {id: 'kv-ttl', type: 'number', min: 1, step: 1, inputmode: 'numeric', placeholder: 'never expires'});
  const meta = h('dl', {class: 'facts', id: 'kv-meta'});
  const message = h('div', {id: 'kv-message', 'aria-live': 'polite'});
  const saveButton = h('button', {type: 'submit', class: 'primary', id: 'kv-save'}, 'Save');

  function showMessage(kind, ...children) {
    replace(message, h('div', {class: `notice ${kind}`, role: kind === 'error' || kind === 'conflict' ? 'alert' : null}, children));
  }

  async function load() {
    const res = await api('GET', kvItemPath(key));
    if (!ctx.alive()) return;
    if (res.status === 404) {
      replace(body, h('p', {class: 'notice', id: 'kv-missing'}, 'No such item (it may have expired or been deleted). ',
        h('a', {href: ctx.href('kv', {prefix: parent})}, 'Back to the folder')));
      return;
    }
    if (!res.ok) {
      replace(body, h('p', {class: 'notice error'}, `Cannot read the item: ${errorText(res)}`));
      return;
    }
    version = res.data.version;
    // The value's own text, so that numbers like 1.0 or 2^64 are shown and saved exactly.
    const raw = memberText(res.text, ['data', 'value']) ?? JSON.stringify(res.data.value);
    valueInput.value = prettyJson(raw);
    const left = secondsUntil(res.data.expiresAt);
    ttlInput.value = left === null ? '' : String(Math.max(1, Math.round(left)));
    replace(meta,
      h('dt', {}, 'Version'), h('dd', {}, h('code', {id: 'kv-version'}, version)),
      h('dt', {}, 'Expires'), h('dd', {}, left === null ? 'never' : `${fmtTime(res.data.expiresAt)} (in ${fmtDuration(left)})`));
    replace(message);
    saveButton.disabled = false;
    if (!body.contains(form)) replace(body, form);
  }

  async function save(event) {
    event.preventDefault();
    const text = valueInput.value.trim();
    try {
      JSON.parse(text);
    } catch (err) {
      showMessage('error', `Not saved: the value is not valid JSON (${err.message}).`);
      return;
    }
    const ttl = ttlInput.value.trim();
    if (ttl && !/^[1-9][0-9]*$/.test(ttl)) {
      showMessage('error', 'Not saved: the TTL is a whole number of seconds, at least 1 (empty: never expires).');
      return;
    }
    saveButton.disabled = true;
    const res = await api('PUT', kvItemPath(key), {
      body: `{"value":${text}${ttl ? `,"ttlSeconds":${ttl}` : ''}}`,
      headers: {'If-Match': `"${version}"`},
    });
    if (!ctx.alive()) return;
    saveButton.disabled = false;
    if (res.status === 412) {
      showMessage('conflict',
        h('p', {id: 'kv-conflict'}, h('strong', {}, 'Not saved: this item was changed by someone else meanwhile. '),
          `Your edit was made on version ${version}, which is no longer the current one. `
          + 'Reload to see the current value (your text is discarded; copy it first if you need it).'),
        h('button', {type: 'button', id: 'kv-conflict-reload', onclick: load}, 'Reload the current value'));
      return;
    }
    if (!res.ok) {
      showMessage('error', `Not saved: ${errorText(res)}`);
      return;
    }
    ctx.flash(`Saved ${key} (version ${res.data?.version})`, 'ok');
    await load();
    if (ctx.alive()) showMessage('ok', `Saved: version ${version}.`);
  }

  async function remove() {
    const confirmed = await ctx.confirm({
      title: 'Delete this item?',
      body: h('p', {}, 'Delete ', h('code', {}, key), '? This cannot be undone.'),
      confirmLabel: 'Delete',
      danger: true,
    });
    if (!confirmed || !ctx.alive()) return;
    const res = await api('DELETE', kvItemPath(key));
    if (!ctx.alive()) return;
    if (!res.ok) {
      showMessage('error', `Not deleted: ${errorText(res)}`);
      return;
    }
    ctx.flash(`Deleted ${key}`, 'ok');
    ctx.navigate('kv', {prefix: parent});
  }

  const form = h('form', {class: 'panel form', id: 'kv-edit', onsubmit: save},
    meta,
    h('label', {for: 'kv-value'}, 'Value (JSON)'),
    valueInput,
    h('label', {for: 'kv-ttl'}, 'TTL in seconds from the save (empty: never expires)'),
    ttlInput,
    message,
    h('div', {class: 'actions'},
      saveButton,
      h('button', {type: 'button', id: 'kv-reload', onclick: load}, 'Reload'),
      h('button', {type: 'button', class: 'danger', id: 'kv-delete', onclick: remove}, 'Delete')),
    h('p', {class: 'muted'}, 'Saving sends If-Match with the version shown: if the item changed since it was read, '
      + 'nothing is overwritten.'));

  load();
}
