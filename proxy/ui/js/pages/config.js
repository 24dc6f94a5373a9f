// Config: the configuration as GET /admin/config gives it (secret values
// masked), and a reload button (POST /admin/reload) that shows
// what changed, or the file:line error of a bad file (the old config keeps serving).

import {api} from '../api.js';
import {errorText, h, replace} from '../dom.js';

export const title = 'Config';

export function mount(root, params, ctx) {
  const pathBox = h('p', {class: 'muted', id: 'config-path'});
  const code = h('pre', {class: 'code numbered', id: 'config-text', tabindex: 0});
  const result = h('div', {id: 'reload-result', 'aria-live': 'polite'});
  const reloadButton = h('button', {type: 'button', class: 'primary', id: 'reload', onclick: reload}, 'Reload config');

  root.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'Config'), h('div', {class: 'actions'}, reloadButton)),
    h('p', {class: 'muted'}, 'Reloading re-reads the file: routes, upstreams, purge-allow, keepalive-timeout and '
      + 'access-log apply to the next request; listeners, threads, buffers, the admin token and the store need a restart. '
      + 'A bad file is refused and the running config keeps serving.'),
    result,
    pathBox,
    code);

  function showText(text) {
    const lines = text.replace(/\n$/, '').split('\n');
    replace(code, lines.map((line) => h('span', {class: 'line'}, `${line}\n`)));
  }

  async function load() {
    const res = await api('GET', '/admin/config');
    if (!ctx.alive()) return;
    if (!res.ok) {
      pathBox.textContent = '';
      replace(code, `Cannot load the config: ${errorText(res)}`);
      return;
    }
    pathBox.textContent = res.data?.path ? `File: ${res.data.path} (secret values shown as ***)` : 'Running without a config file.';
    showText(res.data?.text ?? '');
  }

  async function reload() {
    reloadButton.disabled = true;
    replace(result, h('p', {class: 'muted'}, 'reloading…'));
    const res = await api('POST', '/admin/reload');
    if (!ctx.alive()) return;
    reloadButton.disabled = false;
    if (res.ok) {
      const restart = res.data?.restartNeeded ?? [];
      replace(result, h('div', {class: 'notice ok', id: 'reload-ok'},
        h('strong', {}, 'Reloaded. '),
        restart.length
          ? ['These changes take effect only after a restart: ', restart.map((s, i) => [i ? ', ' : '', h('code', {}, s)])]
          : 'Nothing in it needs a restart.'));
      load();
      return;
    }
    const message = res.error?.message ?? errorText(res);
    replace(result, h('div', {class: 'notice error', id: 'reload-error', role: 'alert'},
      h('strong', {}, 'Not reloaded; the running config is unchanged. '), h('code', {class: 'break'}, message)));
  }

  load();
}
