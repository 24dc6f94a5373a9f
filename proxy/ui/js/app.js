// The console's shell: hash routes, navigation, flash messages and the
// confirmation dialog. Each page is a module exporting
//   title: string
//   mount(root, params, ctx) -> optional cleanup function
// where `params` are the route's query parameters and `ctx` is built below.

import {UNAUTHORIZED_EVENT, clearToken, getToken} from './api.js';
import {h, replace} from './dom.js';
import * as login from './pages/login.js';
import * as overview from './pages/overview.js';
import * as top from './pages/top.js';
import * as cache from './pages/cache.js';
import * as cacheEntry from './pages/cache-entry.js';
import * as kv from './pages/kv.js';
import * as kvItem from './pages/kv-item.js';
import * as cluster from './pages/cluster.js';
import * as config from './pages/config.js';

const ROUTES = {
  login,
  overview,
  top,
  cache,
  'cache/entry': cacheEntry,
  kv,
  'kv/item': kvItem,
  cluster,
  config,
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const navToggle = document.getElementById('nav-toggle');
const flashBox = document.getElementById('flash');
const dialog = document.getElementById('dialog');

let cleanup = null;
let mountId = 0;
// Shown once on the login page after a session's token stopped working.
let loginNotice = null;

/** '#/cache?prefix=x' -> {name: 'cache', params: URLSearchParams('prefix=x')} */
function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [name, query = ''] = raw.split('?', 2);
  return {name: name || 'overview', params: new URLSearchParams(query)};
}

/** Builds '#/name?a=1' from a route name and parameters (empty values dropped). */
export function href(name, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') query.set(k, v);
  }
  const q = query.toString();
  return `#/${name}${q ? `?${q}` : ''}`;
}

function navigate(name, params) {
  const target = href(name, params);
  if (window.location.hash === target) render();
  else window.location.hash = target;
}

/** A message at the top of the page; errors stay until closed, the rest fade after 6 s. */
function flash(message, kind = 'info') {
  const item = h('div', {class: `flash-item ${kind}`, role: kind === 'error' ? 'alert' : null},
    h('span', {}, message),
    h('button', {type: 'button', class: 'link', 'aria-label': 'Dismiss', onclick: () => item.remove()}, '×'));
  flashBox.append(item);
  if (kind !== 'error') setTimeout(() => item.remove(), 6000);
}

/**
 * The in-page confirmation dialog. Resolves true when confirmed.
 * `body` is a string or a node; `danger` paints the confirm button red.
 */
function confirm({title, body, confirmLabel = 'Confirm', danger = false}) {
  document.getElementById('dialog-title').textContent = title;
  const bodyBox = document.getElementById('dialog-body');
  replace(bodyBox, typeof body === 'string' ? h('p', {}, body) : body);
  const confirmButton = document.getElementById('dialog-confirm');
  confirmButton.textContent = confirmLabel;
  confirmButton.classList.toggle('danger', danger);
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), {once: true});
    dialog.showModal();
    document.getElementById('dialog-cancel').focus();
  });
}

function setNavVisible(visible) {
  nav.hidden = !visible;
  navToggle.hidden = !visible;
  document.body.classList.toggle('logged-in', visible);
}

function closeMenu() {
  nav.classList.remove('open');
  navToggle.setAttribute('aria-expanded', 'false');
}

function render() {
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.warn('page cleanup failed', err);
    }
    cleanup = null;
  }
  closeMenu();
  mountId += 1;
  const id = mountId;

  let {name, params} = parseHash();
  if (!getToken() && name !== 'login') {
    // Remember where the operator wanted to go.
    const next = window.location.hash && name !== 'login' ? window.location.hash : '';
    window.location.replace(href('login', {next}));
    return;
  }
  if (getToken() && name === 'login') name = 'overview';
  const page = ROUTES[name];
  setNavVisible(Boolean(getToken()));
  for (const link of nav.querySelectorAll('a[data-page]')) {
    const current = link.dataset.page === name.split('/')[0];
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }

  const root = h('section', {class: 'page', 'data-page': name});
  replace(main, root);
  if (!page) {
    document.title = 'Not found · Aside';
    root.append(h('h1', {}, 'Page not found'), h('p', {}, h('a', {href: '#/overview'}, 'Back to the overview')));
    return;
  }
  document.title = `${page.title} · Aside`;
  const ctx = {
    navigate,
    href,
    flash,
    confirm,
    /** False once the operator left the page: late answers must not touch the DOM. */
    alive: () => id === mountId,
    loginNotice: () => {
      const notice = loginNotice;
      loginNotice = null;
      return notice;
    },
  };
  const result = page.mount(root, params, ctx);
  if (typeof result === 'function') cleanup = result;
}

navToggle.addEventListener('click', () => {
  const open = !nav.classList.contains('open');
  nav.classList.toggle('open', open);
  navToggle.setAttribute('aria-expanded', String(open));
});

document.getElementById('logout').addEventListener('click', () => {
  clearToken();
  flashBox.replaceChildren();
  window.location.hash = '#/login';
});

window.addEventListener(UNAUTHORIZED_EVENT, () => {
  // The token stopped working (changed on the server, or the server restarted
  // with another one): back to the login page with a reason.
  clearToken();
  loginNotice = 'The token was refused by the server; sign in again.';
  window.location.hash = '#/login';
});

window.addEventListener('hashchange', render);
render();
