/**
 * The status page the admin server serves at `/`: one self-contained HTML document
 * (inline CSS and script, no external assets, no build step) that polls the JSON API
 * every 1.5 s and shows listeners, targets, live connections and counters, with
 * buttons to close or reset a connection and to drain or undrain a target.
 *
 * How the script works, for readers new to this:
 * - Every value from the API reaches the page through `textContent` or an attribute,
 *   never through `innerHTML`, so a client address or a listener name cannot inject
 *   markup.
 * - A refresh updates the rows already on the page instead of rebuilding them (see
 *   `syncChildren`): a button under the mouse pointer survives a refresh, so a click
 *   is never lost to one.
 * - With a token configured the API answers 401; the page then asks for the token,
 *   keeps it in `sessionStorage` (gone when the tab closes) and sends it as an
 *   `Authorization: Bearer` header. It never goes into a URL.
 *
 * The script is plain JavaScript inside a template literal, so it must not use
 * backticks or `${`: it builds strings with `+`.
 *
 * A listener's settings (timeouts, limits, ...) are shown as the option table
 * (config/options.ts) lists them: `SETTINGS` below gives the script each one's key in
 * `/api/listeners`, its label and how to write its value.
 */
import { jsonKey, SETTING_NAMES, setting } from '../config/options.js';

/** SETTINGS: each listener setting's JSON key, label and format, for the script. */
const SETTINGS = SETTING_NAMES.map((name) => {
  const spec = setting(name);
  return { key: jsonKey(name), label: spec.label, format: spec.kind.page };
});

const STYLE = `
  :root {
    color-scheme: light dark;
    --bg: #f6f7f9; --panel: #fff; --text: #1d2329; --muted: #5f6b76; --line: #dde2e7;
    --accent: #1f6feb; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --bad-bg: #ffebe9;
  }
  @media (prefers-color-scheme: dark) {
    :root {
      --bg: #0d1117; --panel: #161b22; --text: #e6edf3; --muted: #8d96a0; --line: #30363d;
      --accent: #4493f8; --ok: #3fb950; --warn: #d29922; --bad: #f85149; --bad-bg: #3c1618;
    }
  }
  * { box-sizing: border-box; }
  [hidden] { display: none !important; }
  body {
    margin: 0; padding: 1rem 1.5rem 2rem; background: var(--bg); color: var(--text);
    font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  }
  header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.4rem 1.5rem; }
  h1 { font-size: 1.4rem; margin: 0; }
  h2 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
  h3 { font-size: 1rem; margin: 0; }
  .muted { color: var(--muted); }
  .mono, td, code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
  .stat b { font-size: 1.1rem; }
  .banner {
    margin: 0.75rem 0; padding: 0.6rem 0.9rem; border: 1px solid var(--bad); border-radius: 6px;
    background: var(--bad-bg); color: var(--bad);
  }
  .panel {
    background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
    padding: 0.9rem 1rem; margin-bottom: 1rem;
  }
  .panel-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.3rem 1rem; }
  dl { display: flex; flex-wrap: wrap; gap: 0.2rem 1.4rem; margin: 0.6rem 0; }
  dl div { display: flex; gap: 0.35rem; }
  dt { color: var(--muted); }
  dd { margin: 0; font-variant-numeric: tabular-nums; }
  table { border-collapse: collapse; width: 100%; }
  .panel table { margin-top: 0.4rem; width: auto; min-width: 50%; }
  th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.03em; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tbody tr:last-child td { border-bottom: none; }
  .state-active, .state-relaying { color: var(--ok); }
  .state-drained, .state-half_closed, .state-connecting { color: var(--warn); }
  .state-closing, .state-removing, .state-down { color: var(--bad); }
  button {
    font: inherit; font-size: 12px; padding: 0.15rem 0.6rem; border-radius: 5px; cursor: pointer;
    border: 1px solid var(--line); background: var(--panel); color: var(--text);
  }
  button:hover { border-color: var(--accent); }
  button.danger:hover { border-color: var(--bad); color: var(--bad); }
  button:disabled { opacity: 0.5; cursor: default; }
  .actions { display: inline-flex; gap: 0.4rem; }
  .table-wrap { overflow-x: auto; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; }
  .empty { padding: 0.8rem 1rem; margin: 0; }
  form.token { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: center; }
  form.token input { font: inherit; padding: 0.25rem 0.5rem; min-width: 18rem; }
  .stale main { opacity: 0.55; }
`;

const SCRIPT = `
'use strict';

var REFRESH_MS = 1500;
var TOKEN_KEY = 'proxy-admin-token';
// Each listener setting: its key in /api/listeners, its label, how to write it (formatSetting).
var SETTINGS = ${JSON.stringify(SETTINGS)};

var timer = null;         // the pending refresh
var latestRequest = 0;    // only the newest refresh may draw (answers can arrive out of order)
var needToken = false;    // polling pauses while the page waits for a token

function byTestId(id) {
  return document.querySelector('[data-testid="' + id + '"]');
}

// el builds an element: el('td', { className: 'num' }, 'text', otherNode).
// Strings become text nodes, so they are never parsed as HTML.
function el(tag, props) {
  var node = document.createElement(tag);
  Object.keys(props || {}).forEach(function (key) {
    if (key === 'dataset') Object.assign(node.dataset, props.dataset);
    else if (key === 'onclick') node.addEventListener('click', props.onclick);
    else node[key] = props[key];
  });
  for (var i = 2; i < arguments.length; i++) {
    var child = arguments[i];
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

// setField writes one value into the element marked data-field="name" under root.
function setField(root, name, text, title) {
  var node = root.querySelector('[data-field="' + name + '"]');
  if (node.textContent !== text) node.textContent = text;
  if (title !== undefined) node.title = title;
}

// syncChildren makes parent's children match items, one element per key and in
// order. Elements that already exist are kept and updated, not rebuilt.
function syncChildren(parent, items, keyOf, create, update) {
  var byKey = new Map();
  Array.from(parent.children).forEach(function (child) { byKey.set(child.dataset.key, child); });
  items.forEach(function (item, i) {
    var key = keyOf(item);
    var node = byKey.get(key);
    if (node === undefined) {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  while (parent.children.length > items.length) parent.lastElementChild.remove();
}

// ---- formatting ----

function formatBytes(n) {
  var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  var i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
}

function formatDuration(ms) {
  if (ms < 1000) return Math.round(ms) + ' ms';
  var s = Math.floor(ms / 1000);
  if (s < 60) return (ms % 1000 === 0 ? s : (ms / 1000).toFixed(1)) + ' s';
  var m = Math.floor(s / 60);
  var h = Math.floor(m / 60);
  if (m < 60) return m + 'm' + (s % 60 === 0 ? '' : ' ' + (s % 60) + 's');
  if (h < 24) return h + 'h' + (m % 60 === 0 ? '' : ' ' + (m % 60) + 'm');
  return Math.floor(h / 24) + 'd' + (h % 24 === 0 ? '' : ' ' + (h % 24) + 'h');
}

// A timeout of 0 means the timeout is off.
function formatTimeout(ms) {
  return ms === 0 ? 'off' : formatDuration(ms);
}

// formatProbe writes the health mapping ({ send, expect }, nulls when unset) as l4proxy check does.
function formatProbe(value) {
  var parts = ['send', 'expect'].filter(function (k) { return value && value[k] !== null; })
    .map(function (k) { return k + ' ' + JSON.stringify(value[k]); });
  return parts.length === 0 ? 'connect' : parts.join(' ');
}

// formatSetting writes a listener setting's value as its format says (option-kinds.ts PageFormat).
function formatSetting(format, value) {
  if (format === 'timeout') return formatTimeout(value);
  if (format === 'limit') return value === null ? 'no limit' : String(value);
  if (format === 'probe') return formatProbe(value);
  // text: a word, a list of words, a switch, or null (none set).
  if (value === null || (Array.isArray(value) && value.length === 0)) return 'none';
  if (Array.isArray(value)) return value.join(' ');
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function formatCounts(counts) {
  var keys = Object.keys(counts || {}).sort();
  if (keys.length === 0) return '-';
  return keys.map(function (key) { return key + ' ' + counts[key]; }).join(', ');
}

// formatToxics: a listener's toxics as 'slow (latency downstream), cut (limit_data upstream)'.
function formatToxics(toxics) {
  if (!toxics || toxics.length === 0) return '-';
  return toxics.map(function (x) { return x.name + ' (' + x.type + ' ' + x.stream + ')'; }).join(', ');
}

function sum(counts) {
  return Object.keys(counts || {}).reduce(function (total, key) { return total + counts[key]; }, 0);
}

// ---- talking to the API ----

function AuthError() { this.message = 'token needed'; }

// api sends one request, with the token when there is one. It resolves with the
// parsed JSON (or null for 204) and rejects with an Error whose message is the API's.
async function api(method, path) {
  var headers = { Accept: 'application/json' };
  var token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  var response = await fetch(path, { method: method, headers: headers, cache: 'no-store' });
  if (response.status === 401) throw new AuthError();
  if (response.status === 204) return null;
  var body = await response.json().catch(function () { return null; });
  if (!response.ok) {
    throw new Error(body && body.error ? body.error : method + ' ' + path + ': HTTP ' + response.status);
  }
  return body;
}

function showError(message) {
  var banner = byTestId('error-banner');
  banner.textContent = message;
  banner.hidden = message === '';
}

function askForToken(rejected) {
  needToken = true;
  byTestId('token-form').hidden = false;
  byTestId('token-hint').textContent = rejected
    ? 'That token was refused. Enter the admin token:'
    : 'This admin server needs a token. Enter it:';
  byTestId('token-input').focus();
}

async function refresh() {
  var request = ++latestRequest;
  try {
    var answers = await Promise.all([
      api('GET', '/api/status'),
      api('GET', '/api/listeners'),
      api('GET', '/api/connections'),
    ]);
    if (request !== latestRequest) return; // a newer refresh has drawn or will draw
    render(answers[0], answers[1], answers[2]);
    showError('');
    document.body.classList.remove('stale');
  } catch (err) {
    if (request !== latestRequest) return;
    if (err instanceof AuthError) {
      askForToken(sessionStorage.getItem(TOKEN_KEY) !== null);
    } else {
      showError('Cannot reach the admin API (' + err.message + '); retrying every ' + REFRESH_MS / 1000 + ' s.');
      document.body.classList.add('stale');
    }
  } finally {
    // One pending refresh at most, however many were started (polling plus clicks).
    clearTimeout(timer);
    if (!needToken) timer = setTimeout(refresh, REFRESH_MS);
  }
}

// act runs an action from a button, then refreshes at once to show its effect.
async function act(button, method, path) {
  button.disabled = true;
  try {
    await api(method, path);
  } catch (err) {
    if (err instanceof AuthError) askForToken(true);
    else showError(button.textContent + ' failed: ' + err.message);
  }
  button.disabled = false;
  refresh();
}

// ---- drawing ----

function render(status, listeners, connections) {
  setField(document, 'proxy-version', status.version);
  setField(document, 'proxy-uptime', formatDuration(status.uptime_ms));
  setField(document, 'proxy-active', String(status.connections_active));
  setField(document, 'proxy-updated', new Date().toLocaleTimeString());
  syncChildren(byTestId('listeners'), listeners, function (l) { return l.name; }, createListener, updateListener);
  syncChildren(byTestId('connections'), connections, function (c) { return c.id; }, createConnection, updateConnection);
  byTestId('no-connections').hidden = connections.length > 0;
  byTestId('connections-table').hidden = connections.length === 0;
}

function field(name, className) {
  return el('span', { className: className || '', dataset: { field: name } });
}

function term(label, name) {
  return el('div', {}, el('dt', {}, label), el('dd', {}, field(name)));
}

function createListener(l) {
  var card = el('section', { className: 'panel', dataset: { testid: 'listener', name: l.name } },
    el('div', { className: 'panel-head' },
      el('h3', {}, field('name')),
      field('listener-state'),
      el('span', { className: 'mono' }, field('address')),
      el('span', { className: 'muted' }, 'listen ', field('listen', 'mono'))),
    el.apply(null, ['dl', {}].concat(SETTINGS.map(function (s) { return term(s.label, s.key); }))),
    el('dl', {},
      term('accepted', 'accepted'), term('active', 'active'), term('closed', 'closed'),
      term('bytes to upstream', 'to-upstream'), term('bytes to client', 'to-client'),
      term('connect failures', 'failures'), term('toxics', 'toxics')),
    el('table', {},
      el('thead', {}, el('tr', {},
        el('th', {}, 'Target'), el('th', { className: 'num' }, 'Weight'), el('th', {}, 'State'),
        el('th', { className: 'num' }, 'Open'), el('th', { className: 'num' }, 'Connects'),
        el('th', {}, 'Failures'), el('th', {}, ''))),
      el('tbody', { dataset: { testid: 'targets' } })));
  return card;
}

function updateListener(card, l) {
  setField(card, 'name', l.name);
  // A listener a reload removed shows until its last connection ends.
  card.dataset.state = l.state;
  setField(card, 'listener-state', l.state === 'removing' ? 'removing' : '');
  card.querySelector('[data-field="listener-state"]').className = 'state-' + l.state;
  setField(card, 'address', l.address);
  setField(card, 'listen', l.listen);
  SETTINGS.forEach(function (s) { setField(card, s.key, formatSetting(s.format, l[s.key])); });
  setField(card, 'accepted', String(l.connections_accepted));
  setField(card, 'active', String(l.connections_active));
  var closed = l.connections_closed;
  setField(card, 'closed', sum(closed) === 0 ? '0' : sum(closed) + ' (' + formatCounts(closed) + ')');
  setField(card, 'to-upstream', formatBytes(l.bytes_to_upstream), l.bytes_to_upstream + ' bytes');
  setField(card, 'to-client', formatBytes(l.bytes_to_client), l.bytes_to_client + ' bytes');
  setField(card, 'failures', formatCounts(l.connect_failures));
  setField(card, 'toxics', formatToxics(l.toxics));
  var tbody = card.querySelector('[data-testid="targets"]');
  syncChildren(tbody, l.targets, function (t) { return t.address; },
    function (t) { return createTarget(l.name, t); }, updateTarget);
}

function createTarget(listenerName, t) {
  var row = el('tr', { dataset: { testid: 'target', address: t.address } },
    el('td', {}, field('address'), ' ', field('backup', 'muted')),
    el('td', { className: 'num' }, field('weight')),
    el('td', {}, field('state')),
    el('td', { className: 'num' }, field('connections')),
    el('td', { className: 'num' }, field('connects')),
    el('td', {}, field('failures')),
    el('td', {}, el('button', { dataset: { testid: 'toggle-drain' } })));
  var button = row.querySelector('button');
  button.addEventListener('click', function () {
    // The row's current state decides the action: the label may have changed since it was built.
    var action = row.dataset.state === 'drained' ? 'undrain' : 'drain';
    var path = '/api/listeners/' + encodeURIComponent(listenerName) +
      '/targets/' + encodeURIComponent(t.address) + '/' + action;
    act(button, 'POST', path);
  });
  return row;
}

function updateTarget(row, t) {
  row.dataset.state = t.state;
  setField(row, 'address', t.address);
  // A backup target gets clients only while no other target is up.
  setField(row, 'backup', t.backup ? 'backup' : '');
  setField(row, 'weight', String(t.weight));
  setField(row, 'state', t.state);
  row.querySelector('[data-field="state"]').className = 'state-' + t.state;
  setField(row, 'connections', String(t.connections));
  setField(row, 'connects', String(t.connects));
  setField(row, 'failures', formatCounts(t.failures));
  var button = row.querySelector('button');
  var label = t.state === 'drained' ? 'Undrain' : 'Drain';
  if (button.textContent !== label) button.textContent = label;
  button.title = t.state === 'drained'
    ? 'Put this target back in rotation'
    : 'Take this target out of rotation (open connections stay)';
}

function createConnection(c) {
  var path = '/api/connections/' + encodeURIComponent(c.id);
  var row = el('tr', { dataset: { testid: 'connection', id: c.id } },
    el('td', {}, field('id')),
    el('td', {}, field('listener')),
    el('td', {}, field('state')),
    el('td', {}, field('client')),
    el('td', {}, field('upstream')),
    el('td', { className: 'num' }, field('to-upstream')),
    el('td', { className: 'num' }, field('to-client')),
    el('td', { className: 'num' }, field('age')),
    el('td', {}, el('span', { className: 'actions' },
      el('button', {
        className: 'danger', title: 'Close both sides with FIN', dataset: { testid: 'close-connection' },
        onclick: function (event) { act(event.currentTarget, 'DELETE', path); },
      }, 'Close'),
      el('button', {
        className: 'danger', title: 'Close both sides with a reset (RST)', dataset: { testid: 'reset-connection' },
        onclick: function (event) { act(event.currentTarget, 'DELETE', path + '?reset=1'); },
      }, 'Reset'))));
  return row;
}

function updateConnection(row, c) {
  setField(row, 'id', c.id);
  setField(row, 'listener', c.listener);
  setField(row, 'state', c.state);
  row.querySelector('[data-field="state"]').className = 'state-' + c.state;
  setField(row, 'client', c.client);
  setField(row, 'upstream', c.upstream === null ? '-' : c.upstream,
    c.connect_ms === undefined ? '' : 'connected in ' + c.connect_ms + ' ms');
  setField(row, 'to-upstream', formatBytes(c.bytes_to_upstream), c.bytes_to_upstream + ' bytes');
  setField(row, 'to-client', formatBytes(c.bytes_to_client), c.bytes_to_client + ' bytes');
  setField(row, 'age', formatDuration(c.age_ms));
}

// ---- start ----

byTestId('token-form').addEventListener('submit', function (event) {
  event.preventDefault(); // handled here: the token must never end up in a URL
  var input = byTestId('token-input');
  if (input.value.trim() === '') return;
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = '';
  byTestId('token-form').hidden = true;
  needToken = false;
  refresh();
});

refresh();
`;

/** STATUS_PAGE is the admin server's HTML status page: inline CSS and script, nothing external. */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>l4proxy status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>l4proxy <span class="muted" data-field="proxy-version" data-testid="version"></span></h1>
  <span class="stat">up <b data-field="proxy-uptime" data-testid="uptime">-</b></span>
  <span class="stat"><b data-field="proxy-active">-</b> live connections</span>
  <span class="muted">updated <span data-field="proxy-updated">never</span>, every 1.5 s</span>
</header>
<div class="banner" role="alert" data-testid="error-banner" hidden></div>
<form class="panel token" method="post" action="#" data-testid="token-form" hidden>
  <label for="token" data-testid="token-hint">This admin server needs a token. Enter it:</label>
  <input id="token" type="password" autocomplete="off" data-testid="token-input">
  <button type="submit" data-testid="token-submit">Use token</button>
  <span class="muted">Kept in this tab only (sessionStorage).</span>
</form>
<main>
  <h2>Listeners</h2>
  <div data-testid="listeners"></div>
  <h2>Live connections</h2>
  <div class="table-wrap">
    <p class="empty muted" data-testid="no-connections">No live connections.</p>
    <table data-testid="connections-table" hidden>
      <thead><tr>
        <th>ID</th><th>Listener</th><th>State</th><th>Client</th><th>Upstream</th>
        <th class="num">To upstream</th><th class="num">To client</th><th class="num">Age</th><th></th>
      </tr></thead>
      <tbody data-testid="connections"></tbody>
    </table>
  </div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
