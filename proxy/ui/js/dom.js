// Small DOM and formatting helpers shared by the pages.
//
// Everything is built with createElement/textContent, never innerHTML: values
// from the API (URLs, headers, keys, config text) are shown as text, so they
// cannot inject markup. No inline style attributes either (the CSP forbids
// them); layout lives in app.css and classes.

/**
 * Builds an element: h('a', {href: '#/kv', class: 'x', onclick: fn}, 'text', child, [more]).
 * Attributes: `class`, `text`, `dataset` (object), `on<event>` (listener),
 * booleans (true sets, false/null/undefined skips), anything else via setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'value' && 'value' in el) el.value = value;
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

/** Appends strings, nodes and (nested) arrays of them; skips null/undefined/false. */
export function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : String(child));
  }
  return parent;
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A table with a header row; `rows` are arrays of cells (strings or nodes) or ready <tr> elements. */
export function table(headers, rows, {className = 'grid', empty = 'Nothing to show.'} = {}) {
  const thead = h('thead', {}, h('tr', {}, headers.map((t) => h('th', {scope: 'col'}, t))));
  const tbody = h('tbody', {}, rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c) => h('td', {}, c))))));
  if (rows.length === 0) tbody.append(h('tr', {}, h('td', {colspan: headers.length, class: 'empty'}, empty)));
  // The wrapper scrolls sideways on a phone instead of squeezing the columns.
  return h('div', {class: 'table-wrap'}, h('table', {class: className}, thead, tbody));
}

/** A labelled figure: <div class="card"><span>label</span><strong>value</strong></div>. */
export function card(label, value, {testid, hint} = {}) {
  return h('div', {class: 'card'},
    h('span', {class: 'card-label'}, label),
    h('strong', {class: 'card-value', 'data-testid': testid}, value),
    hint ? h('span', {class: 'card-hint'}, hint) : null);
}

// ---- formatting ----------------------------------------------------------

const numberFormat = new Intl.NumberFormat('en');

export function fmtNumber(n) {
  return n === null || n === undefined ? '–' : numberFormat.format(n);
}

/** 0.934 -> "93.4 %" ; null -> "–". */
export function fmtPercent(ratio, digits = 1) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return '–';
  return `${(ratio * 100).toFixed(digits)} %`;
}

/** Bytes in binary units: 1536 -> "1.5 KiB". */
export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** Seconds as a short duration: 59 -> "59s", 3725 -> "1h 2m", 90061 -> "1d 1h". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  let s = Math.max(0, Math.round(seconds));
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (s >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

/** Seconds from now until an RFC 3339 time (negative when past); null for null. */
export function secondsUntil(iso, now = Date.now()) {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : (t - now) / 1000;
}

/** A local date-time for an RFC 3339 string, to the second. */
export function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString('en-GB', {hour12: false});
}

/** The message of an API failure as one line. */
export function errorText(res) {
  if (!res) return 'unknown error';
  if (res.status === 0) return res.error?.message ?? 'the admin API cannot be reached';
  const code = res.error?.code ? ` ${res.error.code}` : '';
  const message = res.error?.message ? `: ${res.error.message}` : '';
  return `HTTP ${res.status}${code}${message}`;
}
