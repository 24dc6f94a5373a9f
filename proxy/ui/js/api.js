// The admin API client: one fetch wrapper that adds the bearer token and
// turns every answer into a plain result object, so pages check `ok` and
// `status` instead of catching exceptions.
//
// The token lives in sessionStorage only (gone when the tab closes) and is
// sent as an Authorization header, never as a cookie: a cross-site page
// cannot make the browser send it, so there is no CSRF surface.

const TOKEN_KEY = 'aside.adminToken';

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Fired on window when a request made with the stored token gets 401. */
export const UNAUTHORIZED_EVENT = 'aside:unauthorized';

/**
 * One request to the admin API.
 *
 * @param {string} method
 * @param {string} path      e.g. '/cache/entries'
 * @param {object} [options]
 * @param {object} [options.query]   query parameters; null/undefined/'' values are left out
 * @param {*}      [options.json]    a body serialized with JSON.stringify
 * @param {string} [options.body]    a body sent as is (already JSON text)
 * @param {object} [options.headers] extra headers (If-Match, ...)
 * @param {string} [options.token]   a token to try instead of the stored one (login)
 * @returns {Promise<{ok: boolean, status: number, data: *, error: ?{code: string, message: string},
 *                    headers: ?Headers, text: string}>}
 *   status 0 means the server could not be reached.
 */
export async function api(method, path, options = {}) {
  const {query, json, body, headers = {}, token} = options;
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== null && value !== undefined && value !== '') url.searchParams.set(name, String(value));
  }
  const bearer = token ?? getToken();
  const init = {method, headers: {Accept: 'application/json', ...headers}, credentials: 'omit', cache: 'no-store'};
  if (bearer) init.headers.Authorization = `Bearer ${bearer}`;
  if (json !== undefined || body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = body ?? JSON.stringify(json);
  }

  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    return {ok: false, status: 0, data: null, headers: null, text: '',
      error: {code: 'unreachable', message: `the admin API cannot be reached (${err.message})`}};
  }
  const text = await response.text().catch(() => '');
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null; // /metrics and friends are not JSON; callers use `text`
    }
  }
  const result = {
    ok: response.ok,
    status: response.status,
    data: parsed?.data ?? null,
    error: response.ok ? null : (parsed?.error ?? {code: String(response.status), message: response.statusText}),
    headers: response.headers,
    text,
  };
  if (response.status === 401 && token === undefined && bearer) {
    window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT));
  }
  return result;
}

/** The path of one KV item: each part of the key percent-encoded, '/' kept between parts. */
export function kvItemPath(key) {
  return `/kv/items/${key.split('/').map(encodeURIComponent).join('/')}`;
}
