// Exact JSON text handling for the KV editor.
//
// The KV API keeps a value exactly as written (`1.0` stays `1.0`, integers
// beyond 2^53 lose nothing). JSON.parse would silently change such numbers, so
// the editor never round-trips a value through JS objects: it cuts the value's
// own text out of the answer, re-indents it token by token, and sends the
// operator's text back as is (JSON.parse is only used to check it is valid).

const WS = new Set([' ', '\t', '\n', '\r']);

function skipWs(text, i) {
  while (i < text.length && WS.has(text[i])) i += 1;
  return i;
}

/** End (exclusive) of the string starting at text[i] === '"'. */
function stringEnd(text, i) {
  for (let j = i + 1; j < text.length; j += 1) {
    if (text[j] === '\\') j += 1;
    else if (text[j] === '"') return j + 1;
  }
  throw new SyntaxError('unterminated string');
}

/** End (exclusive) of the JSON value starting at text[i] (no leading whitespace). */
function valueEnd(text, i) {
  const c = text[i];
  if (c === '"') return stringEnd(text, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < text.length; j += 1) {
      const d = text[j];
      if (d === '"') j = stringEnd(text, j) - 1;
      else if (d === '{' || d === '[') depth += 1;
      else if (d === '}' || d === ']') {
        depth -= 1;
        if (depth === 0) return j + 1;
      }
    }
    throw new SyntaxError('unterminated container');
  }
  let j = i;
  while (j < text.length && !WS.has(text[j]) && !',]}'.includes(text[j])) j += 1;
  return j;
}

/**
 * The exact text of a member reached through object keys, e.g.
 * memberText('{"data":{"key":"a","value":{"n":1.0}}}', ['data', 'value']) === '{"n":1.0}'.
 * Returns null when a key along the path is missing.
 */
export function memberText(text, path) {
  let start = skipWs(text, 0);
  for (const wanted of path) {
    if (text[start] !== '{') return null;
    let i = skipWs(text, start + 1);
    let found = null;
    while (i < text.length && text[i] !== '}') {
      const keyEnd = stringEnd(text, i);
      const name = JSON.parse(text.slice(i, keyEnd));
      i = skipWs(text, keyEnd);
      i = skipWs(text, i + 1); // past ':'
      const end = valueEnd(text, i);
      if (name === wanted) {
        found = i;
        break;
      }
      i = skipWs(text, end);
      if (text[i] === ',') i = skipWs(text, i + 1);
    }
    if (found === null) return null;
    start = found;
  }
  return text.slice(start, valueEnd(text, start));
}

/** Re-indents JSON text without parsing it: strings, numbers and literals are copied verbatim. */
export function prettyJson(text, indent = '  ') {
  let out = '';
  let depth = 0;
  const newline = () => `\n${indent.repeat(depth)}`;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (WS.has(c)) continue;
    if (c === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end - 1;
    } else if (c === '{' || c === '[') {
      const next = skipWs(text, i + 1);
      const close = c === '{' ? '}' : ']';
      if (text[next] === close) {
        out += c + close;
        i = next;
      } else {
        depth += 1;
        out += c + newline();
      }
    } else if (c === '}' || c === ']') {
      depth -= 1;
      out += newline() + c;
    } else if (c === ',') {
      out += `,${newline()}`;
    } else if (c === ':') {
      out += ': ';
    } else {
      out += c;
    }
  }
  return out;
}

/** A one-line preview of a value already parsed by JSON.parse (used in listings only). */
export function preview(value, max = 80) {
  const text = JSON.stringify(value) ?? 'null';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
