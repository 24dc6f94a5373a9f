// Login: the admin token is checked with one cheap authenticated request
// before it is kept (in sessionStorage, see api.js).

import {api, setToken} from '../api.js';
import {errorText, h} from '../dom.js';

export const title = 'Sign in';

export function mount(root, params, ctx) {
  const message = h('p', {class: 'notice error', id: 'login-error', role: 'alert', hidden: true});
  const notice = ctx.loginNotice();
  if (notice) {
    message.textContent = notice;
    message.hidden = false;
  }
  const input = h('input', {
    type: 'password', id: 'token', name: 'token', autocomplete: 'current-password',
    required: true, spellcheck: 'false', placeholder: 'admin token',
  });
  const submit = h('button', {type: 'submit', class: 'primary', id: 'login-submit'}, 'Sign in');

  async function onSubmit(event) {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    submit.disabled = true;
    message.hidden = true;
    const res = await api('GET', '/cache/entries', {query: {limit: 1}, token});
    if (!ctx.alive()) return;
    submit.disabled = false;
    if (res.ok) {
      setToken(token);
      const next = params.get('next');
      window.location.hash = next && next.startsWith('#/') && !next.startsWith('#/login') ? next : '#/overview';
      return;
    }
    message.textContent = res.status === 401
      ? 'Token refused: the server did not accept this admin token.'
      : `Cannot sign in: ${errorText(res)}`;
    message.hidden = false;
    input.select();
  }

  root.classList.add('login');
  root.append(
    h('form', {class: 'login-box', id: 'login-form', onsubmit: onSubmit},
      h('h1', {}, 'Aside console'),
      h('p', {class: 'muted'},
        'Sign in with the admin token (',
        h('code', {}, '[admin] token-env'), ', ', h('code', {}, 'token-file'),
        ', or the one Aside generated in its data directory). It is kept in this tab only.'),
      h('label', {for: 'token'}, 'Admin token'),
      input,
      message,
      submit));
  input.focus();
}
