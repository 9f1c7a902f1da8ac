// Loopsy dashboard: plain JavaScript, no dependencies. Every call goes to the daemon's REST API
// with the session cookie (HttpOnly, so this script never sees it) and the CSRF token the login
// returned, kept in this origin's localStorage. Browsers send a host's cookies to all its ports;
// storage is per port, so a cookie collected by another local server opens nothing. Streams
// are read with fetch (EventSource cannot send the token). Data from the network only ever
// reaches the page through textContent, never as HTML.
'use strict';

const state = {
  csrf: null,
  mode: 'daemon',
  nodes: [],      // [{name, base, nodeId, reachable}]
  node: null,     // the selected local node
  page: 'overview',
  events: null,   // AbortController of the selected node's change stream
  peers: [],      // peers of the selected node
  taskId: null,
  taskBase: null,
  taskStream: null, // AbortController of the open task's event stream
  terminal: null, // AbortController of the running command
  refreshTimer: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Task ids share a "task_" prefix: show enough after it to tell them apart.
// A node id is shortened; any other origin ("key:helper") is shown whole.
function origin(from) { return /^[0-9a-f]{32}$/.test(from) ? from.slice(0, 12) : from; }
function shortId(id) { return id.length > 14 ? id.slice(0, 13) : id; }

function badge(text) { return el('span', { class: 'badge ' + text }, text); }

function ago(millis) {
  if (!millis) return '—';
  const seconds = Math.round((Date.now() - millis) / 1000);
  if (seconds < 5) return 'just now';
  if (seconds < 90) return seconds + ' s ago';
  if (seconds < 5400) return Math.round(seconds / 60) + ' min ago';
  if (seconds < 172800) return Math.round(seconds / 3600) + ' h ago';
  return new Date(millis).toLocaleString();
}

function duration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 120) return seconds + ' s';
  if (seconds < 7200) return Math.round(seconds / 60) + ' min';
  if (seconds < 172800) return Math.round(seconds / 3600) + ' h';
  return Math.round(seconds / 86400) + ' d';
}

let toastTimer = null;
// A message belongs to the page it came from: it goes when the page changes, or on a click.
function hideToast() {
  clearTimeout(toastTimer);
  $('toast').className = 'toast';
}
function toast(message, bad) {
  const box = $('toast');
  box.textContent = message;
  box.className = 'toast show' + (bad ? ' bad' : '');
  box.onclick = hideToast;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.className = 'toast'; }, bad ? 6000 : 2500);
}

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// One call to the API below `base` (a node's /api/v1, or a peer's through it).
async function api(base, path, options = {}) {
  const method = options.method || 'GET';
  const headers = { Accept: 'application/json', 'X-CSRF-Token': state.csrf || '' };
  let body;
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  const response = await fetch(base + path, { method, headers, body, credentials: 'same-origin',
                                              signal: options.signal });
  if (options.raw) return response;
  const type = response.headers.get('content-type') || '';
  const data = type.includes('json') ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    // A peer's own 401 (relayed) says nothing about this session.
    if (response.status === 401 && !response.headers.get('X-Peer-Request-Id')) {
      showLogin('Your session ended; log in again.');
    }
    const error = data && data.error;
    throw new APIError(response.status, error ? error.code : 'http_' + response.status,
                       error ? error.message : 'HTTP ' + response.status);
  }
  return data;
}

function failed(error) {
  if (error && error.name === 'AbortError') return;
  toast(error.message || String(error), true);
}

// MARK: Login

function showLogin(message) {
  stopLive();
  stopTask();
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('login-key').focus();
}

const loopback = ['localhost', '127.0.0.1', '[::1]'];

async function login(payload) {
  if (payload.apiKey && location.protocol !== 'https:' && !loopback.includes(location.hostname)) {
    // The server would refuse it, but only after the key had crossed the network in clear.
    throw new Error('Not sent: over plain HTTP the key would cross the network in clear. Enable tls.enabled '
                    + 'and use https://, or open the dashboard on this machine.');
  }
  const response = await fetch('/dashboard/api/login', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(payload),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(data && data.error ? data.error.message : 'HTTP ' + response.status);
  return data;
}

async function startSession(session) {
  state.csrf = session.csrfToken;
  localStorage.setItem('loopsy.csrf', session.csrfToken);
  state.mode = session.mode;
  state.nodes = session.nodes;
  const select = $('node-select');
  select.replaceChildren(...state.nodes.map((node, index) =>
    el('option', { value: String(index) }, node.name + (node.reachable ? '' : ' (not running)'))));
  const remembered = state.nodes.findIndex((node) => node.name === sessionStorage.getItem('loopsy.node'));
  const first = state.nodes.findIndex((node) => node.reachable);
  select.value = String(remembered >= 0 ? remembered : Math.max(first, 0));
  select.closest('label').hidden = state.nodes.length < 2;
  state.node = state.nodes[Number(select.value)];
  $('login').hidden = true;
  $('app').hidden = false;
  startLive();
  await route();
}

async function boot() {
  $('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('login-error').textContent = '';
    try {
      const session = await login({ apiKey: $('login-key').value.trim() });
      $('login-key').value = '';
      await startSession(session);
    } catch (error) {
      $('login-error').textContent = error.message;
    }
  });
  $('logout').addEventListener('click', logout);
  $('node-select').addEventListener('change', async () => {
    state.node = state.nodes[Number($('node-select').value)];
    sessionStorage.setItem('loopsy.node', state.node.name);
    startLive();
    await route();
  });
  window.addEventListener('hashchange', route);
  wireContext();
  wireMessages();
  wireTasks();
  wireTerminal();

  // A one-time link: #login=<token>. Drop it from the address bar and history at once.
  const match = /^#login=([0-9a-f]{16,128})$/.exec(location.hash);
  if (match) {
    history.replaceState(null, '', location.pathname + '#/overview');
    try {
      await startSession(await login({ token: match[1] }));
    } catch (error) {
      showLogin(error.message);
    }
    return;
  }
  const token = localStorage.getItem('loopsy.csrf');
  const response = token ? await fetch('/dashboard/api/session', {
    credentials: 'same-origin', headers: { 'X-CSRF-Token': token, Accept: 'application/json' } }) : null;
  if (response && response.ok) await startSession(await response.json());
  else showLogin();
}

async function logout() {
  try {
    await fetch('/dashboard/api/logout', { method: 'POST', credentials: 'same-origin',
                                           headers: { 'X-CSRF-Token': state.csrf || '' } });
  } finally {
    state.csrf = null;
    localStorage.removeItem('loopsy.csrf');
    stopTask();
    showLogin('Logged out.');
  }
}

// MARK: Live updates (Server-Sent Events from the selected node)

// Reads a text/event-stream from `url` (with the token) until it ends or `signal` aborts;
// calls onEvent(type, data, id) per event. Resolves when the stream ends.
async function readStream(url, signal, onEvent) {
  const response = await fetch(url, { credentials: 'same-origin', signal,
                                      headers: { Accept: 'text/event-stream', 'X-CSRF-Token': state.csrf || '' } });
  if (!response.ok) throw new APIError(response.status, 'http_' + response.status, 'HTTP ' + response.status);
  await readEvents(response.body, onEvent);
}

function startLive() {
  stopLive();
  if (!state.node || !state.node.reachable) { setLive(false, 'node not running'); return; }
  const controller = new AbortController();
  state.events = controller;
  const url = state.node.base + '/events';
  (async () => {
    while (!controller.signal.aborted) {
      try {
        await readStream(url, controller.signal, (type, data) => {
          if (type === 'ready') { setLive(true, 'live'); scheduleRefresh(); return; }
          if (type !== 'change') return;
          let change = {};
          try { change = JSON.parse(data); } catch (error) { return; }
          if (relevant(change.topic)) scheduleRefresh();
        });
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error.status === 401 || error.status === 403) { showLogin('Your session ended; log in again.'); return; }
      }
      if (controller.signal.aborted) return;
      setLive(false, 'reconnecting…');
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  })();
}

function stopLive() {
  if (state.events) state.events.abort();
  state.events = null;
}

function setLive(on, text) {
  const live = $('live');
  live.textContent = text;
  live.className = 'live ' + (on ? 'on' : 'off');
}

function relevant(topic) {
  switch (state.page) {
    case 'overview': return true;
    case 'peers': return topic === 'peers';
    case 'context': return topic === 'context' || topic === 'locks';
    case 'messages': return topic === 'messages' || topic === 'peers' || topic === 'approvals';
    case 'tasks': return topic === 'ai-tasks';
    default: return false;
  }
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => load(state.page).catch(failed), 250);
}

// MARK: Pages

const pages = ['overview', 'peers', 'context', 'messages', 'tasks', 'terminal'];

async function route() {
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  const page = pages.includes(name) ? name : 'overview';
  if (state.page === 'tasks' && page !== 'tasks') stopTask();
  if (state.page !== page) hideToast();
  state.page = page;
  for (const other of pages) $('page-' + other).hidden = other !== page;
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.page === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = 'Loopsy · ' + document.querySelector(`nav a[data-page="${page}"]`).textContent;
  try {
    await load(page);
  } catch (error) {
    failed(error);
  }
}

async function load(page) {
  if (!state.csrf) return;
  switch (page) {
    case 'overview': return loadOverview();
    case 'peers': return loadPeers();
    case 'context': return loadContext();
    case 'messages': return loadMessages();
    case 'tasks': return loadTasks();
    case 'terminal': return loadTerminal();
  }
}

function table(target, headers, rows, emptyText) {
  const head = el('thead', {}, el('tr', {}, headers.map((text) => el('th', { scope: 'col' }, text))));
  // On a narrow screen each row is shown as a card, each cell with its column's name.
  for (const row of rows) {
    Array.from(row.children).forEach((cell, index) => { if (headers[index]) cell.dataset.label = headers[index]; });
  }
  const body = el('tbody', {}, rows.length ? rows
    : [el('tr', {}, el('td', { class: 'empty', colspan: String(headers.length) }, emptyText))]);
  target.replaceChildren(head, body);
}

// Peers of every reachable local node, one row per machine.
async function allPeers() {
  const merged = new Map();
  const localIds = new Set(state.nodes.map((node) => node.nodeId).filter(Boolean));
  await Promise.all(state.nodes.filter((node) => node.reachable).map(async (node) => {
    const list = await api(node.base, '/peers').catch(() => ({ peers: [] }));
    for (const peer of list.peers) {
      const known = merged.get(peer.nodeId);
      if (!known) {
        merged.set(peer.nodeId, { ...peer, seenBy: [node.name], local: localIds.has(peer.nodeId) });
        continue;
      }
      known.seenBy.push(node.name);
      // The freshest view wins: online anywhere means online.
      if (peer.status === 'online' || (peer.lastSeen || 0) > (known.lastSeen || 0)) {
        Object.assign(known, { ...peer, seenBy: known.seenBy, local: known.local });
      }
    }
  }));
  return [...merged.values()].sort((a, b) => a.name.localeCompare(b.name));
}

async function loadOverview() {
  const cards = await Promise.all(state.nodes.map(async (node) => {
    if (!node.reachable) {
      return el('article', { class: 'card' }, el('h3', {}, node.name), badge('offline'),
                el('p', { class: 'hint' }, 'Not running. Start it with `loopsy session start ' + node.name + '`.'));
    }
    try {
      const status = await api(node.base, '/status');
      return el('article', { class: 'card', 'aria-label': 'Node ' + status.hostname },
        el('h3', {}, status.hostname, ' ', badge('online')),
        el('dl', {},
          el('dt', {}, 'Node'), el('dd', {}, el('code', {}, status.nodeId.slice(0, 12))),
          el('dt', {}, 'Port'), el('dd', {}, String(status.port)),
          el('dt', {}, 'Version'), el('dd', {}, status.version),
          el('dt', {}, 'Uptime'), el('dd', {}, duration(status.uptime)),
          el('dt', {}, 'Peers'), el('dd', {}, `${status.peersOnline} online of ${status.peers}`),
          el('dt', {}, 'Jobs'), el('dd', {}, String(status.jobs)),
          el('dt', {}, 'Context'), el('dd', {}, status.context + ' keys')));
    } catch (error) {
      return el('article', { class: 'card' }, el('h3', {}, node.name), badge('offline'),
                el('p', { class: 'error' }, error.message));
    }
  }));
  $('overview-nodes').replaceChildren(...cards);
  const peers = await allPeers();
  table($('overview-peers'), ['Peer', 'Status', 'Address', 'Last seen', 'Known to'], peers.map((peer) =>
    el('tr', {}, el('td', {}, peer.name), el('td', {}, badge(peer.status)),
       el('td', {}, peer.address + ':' + peer.port), el('td', {}, ago(peer.lastSeen)),
       el('td', {}, peer.seenBy.join(', ')))), 'No peers yet. Pair with `loopsy pair`.');
}

async function loadPeers() {
  const peers = await allPeers();
  table($('peers-table'), ['Name', 'Status', 'Node ID', 'Addresses', 'TLS', 'May do here', 'Last seen',
                           'Checks failed', 'Last error', 'Known to', ''], peers.map((peer) =>
    el('tr', {},
       el('td', {}, peer.name),
       el('td', {}, badge(peer.status)),
       el('td', {}, el('code', { title: peer.nodeId }, peer.nodeId.slice(0, 12))),
       el('td', {}, (peer.addresses && peer.addresses.length ? peer.addresses : [peer.address]).join(', ')
                     + ':' + peer.port),
       el('td', {}, peer.tls ? (peer.fingerprint ? 'pinned' : 'yes') : 'no'),
       el('td', {}, peer.grants ? (peer.grants.length ? peer.grants.join(', ') : 'nothing') : '–'),
       el('td', {}, ago(peer.lastSeen)),
       el('td', {}, String(peer.failures)),
       el('td', { class: 'value' }, peer.lastError || ''),
       el('td', {}, peer.seenBy.join(', ')),
       el('td', {},
          peer.grants ? el('button', { type: 'button', class: 'small', 'aria-label': 'Change grants of ' + peer.name,
                                       onclick: () => changeGrants(peer) }, 'Grants') : '',
          el('button', { type: 'button', class: 'small danger', 'aria-label': 'Remove peer ' + peer.name,
                         onclick: () => removePeer(peer) }, 'Remove')))),
    'No peers yet. Pair with `loopsy pair`, or they appear by themselves over mDNS.');
}

const capabilities = ['context:read', 'context:write', 'messages', 'exec', 'transfer', 'tasks'];

// What a peer may do on the selected node: the owner types the whole list.
async function changeGrants(peer) {
  const answer = prompt(`What may ${peer.name} do on ${state.node.name}? Grants, comma-separated, from: `
                        + capabilities.join(', '), (peer.grants || []).join(', '));
  if (answer === null) return;
  const wanted = answer.split(/[\s,]+/).filter(Boolean);
  const unknown = wanted.filter((name) => !capabilities.includes(name));
  if (unknown.length) { toast('Unknown grant: ' + unknown.join(', ')); return; }
  try {
    await api(state.node.base, '/grants/' + encodeURIComponent(peer.nodeId), { method: 'POST',
      body: { grant: wanted, revoke: capabilities.filter((name) => !wanted.includes(name)) } });
    toast(`${peer.name} may now: ${wanted.length ? wanted.join(', ') : 'nothing'}`);
    await loadPeers();
  } catch (error) { failed(error); }
}

async function removePeer(peer) {
  if (!confirm(`Remove ${peer.name} from ${state.node.name}? Its key is revoked.`)) return;
  try {
    await api(state.node.base, '/peers/' + encodeURIComponent(peer.nodeId), { method: 'DELETE' });
    toast('Removed ' + peer.name);
    await loadPeers();
  } catch (error) { failed(error); }
}

// MARK: Context

function wireContext() {
  $('context-filter').addEventListener('submit', (event) => {
    event.preventDefault();
    loadContext().catch(failed);
  });
  $('context-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = $('context-key').value.trim();
    const ttlText = $('context-ttl').value.trim();
    const body = { value: $('context-value').value };
    if (ttlText) body.ttl = Number(ttlText);
    try {
      await api(state.node.base, '/context/' + encodeURIComponent(key), { method: 'PUT', body });
      toast('Saved ' + key);
      $('context-form').reset();
      await loadContext();
    } catch (error) { failed(error); }
  });
}

async function loadContext() {
  const prefix = $('context-prefix').value;
  const query = prefix ? '?prefix=' + encodeURIComponent(prefix) : '';
  const list = await api(state.node.base, '/context' + query);
  table($('context-table'), ['Key', 'Value', 'TTL left', 'Updated', 'From', ''], list.entries.map((entry) =>
    el('tr', {},
       el('td', {}, el('code', {}, entry.key)),
       el('td', { class: 'value' }, entry.value),
       el('td', {}, entry.expiresAt ? duration((entry.expiresAt - Date.now()) / 1000) : 'never expires'),
       el('td', {}, ago(entry.updatedAt)),
       el('td', {}, el('code', { title: entry.fromNodeId }, origin(entry.fromNodeId || ''))),
       el('td', {},
          el('button', { type: 'button', class: 'small secondary', 'aria-label': 'Edit ' + entry.key,
                         onclick: () => editContext(entry) }, 'Edit'),
          el('button', { type: 'button', class: 'small danger', 'aria-label': 'Delete ' + entry.key,
                         onclick: () => deleteContext(entry.key) }, 'Delete')))),
    prefix ? 'No keys start with “' + prefix + '”.' : 'The context store is empty.');
  // One page: the daemon stops at 1000 entries or about 4 MiB of keys and values.
  $('context-more').hidden = !list.more;
  $('context-more').textContent = list.more
    ? 'Showing the first ' + list.entries.length + ' keys (up to “' + list.nextAfterKey + '”); filter by prefix to see the others.'
    : '';
  const locks = await api(state.node.base, '/locks');
  table($('locks-table'), ['Lock', 'Held by', 'Fencing token', 'Lease left'], locks.locks.map((lock) =>
    el('tr', {},
       el('td', {}, el('code', {}, lock.name)),
       el('td', {}, lock.holder),
       el('td', {}, String(lock.token)),
       el('td', {}, duration((lock.expiresAt - Date.now()) / 1000)))),
    'No locks are held.');
}

function editContext(entry) {
  $('context-key').value = entry.key;
  $('context-value').value = entry.value;
  $('context-ttl').value = entry.expiresAt ? String(Math.max(1, Math.round((entry.expiresAt - Date.now()) / 1000))) : '';
  $('context-value').focus();
}

async function deleteContext(key) {
  if (!confirm('Delete ' + key + '?')) return;
  try {
    await api(state.node.base, '/context/' + encodeURIComponent(key), { method: 'DELETE' });
    toast('Deleted ' + key);
    await loadContext();
  } catch (error) { failed(error); }
}

// MARK: Messages

function wireMessages() {
  $('message-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const to = $('message-to').value;
    try {
      const sent = await api(state.node.base, '/messages', { method: 'POST',
                                                             body: { to, body: $('message-body').value, type: 'chat' } });
      const states = (sent.messages || []).map((message) => message.state).join(', ');
      toast('Sent' + (states ? ' (' + states + ')' : ''));
      $('message-body').value = '';
      await loadMessages();
    } catch (error) { failed(error); }
  });
}

async function loadMessages() {
  const base = state.node.base;
  const [peers, inbox, outbox, approvals] = await Promise.all([
    api(base, '/peers'), api(base, '/messages/inbox?limit=200'), api(base, '/messages/outbox?limit=200'),
    api(base, '/approvals?limit=50').catch(() => ({ approvals: [] }))]);
  table($('approvals-table'), ['Tool', 'What', 'Asked', 'State', ''], approvals.approvals.map((approval) =>
    el('tr', {},
       el('td', {}, approval.toolName),
       el('td', { class: 'value' }, approval.description + (approval.inputPreview ? '\n' + approval.inputPreview : '')),
       el('td', {}, ago(approval.createdAt)),
       el('td', {}, badge(approval.state)),
       el('td', {}, approval.state === 'pending' ? [
         el('button', { type: 'button', class: 'small', 'aria-label': 'Allow ' + approval.toolName,
                        onclick: () => answerApproval(approval, 'allow') }, 'Allow'),
         el('button', { type: 'button', class: 'small danger', 'aria-label': 'Deny ' + approval.toolName,
                        onclick: () => answerApproval(approval, 'deny') }, 'Deny')] : (approval.answeredBy || '')))),
    'No permission prompts.');
  state.peers = peers.peers;
  fillOptions($('message-to'), state.peers.map((peer) => ({ value: peer.nodeId, label: `${peer.name} (${peer.status})` })));
  const messages = inbox.messages.slice().reverse();
  table($('inbox-table'), ['From', 'Message', 'Type', 'Received', 'State', ''], messages.map((message) =>
    el('tr', {},
       el('td', {}, message.fromName),
       el('td', { class: 'value' }, message.body),
       el('td', {}, message.type),
       el('td', {}, ago(message.receivedAt)),
       el('td', {}, badge(message.state)),
       el('td', {},
          message.state === 'unread' ? el('button', { type: 'button', class: 'small secondary',
            'aria-label': 'Mark read: message from ' + message.fromName,
            onclick: () => markMessage(message, 'read') }, 'Mark read') : null,
          message.state !== 'acked' ? el('button', { type: 'button', class: 'small secondary',
            'aria-label': 'Acknowledge message from ' + message.fromName,
            onclick: () => markMessage(message, 'ack') }, 'Ack') : null))),
    'No messages yet.');
  table($('outbox-table'), ['To', 'Message', 'Sent', 'State', 'Attempts', 'Last error'], outbox.messages.map((message) =>
    el('tr', {},
       el('td', {}, message.toName),
       el('td', { class: 'value' }, message.body),
       el('td', {}, ago(message.createdAt)),
       el('td', {}, badge(message.state)),
       el('td', {}, String(message.attempts)),
       el('td', { class: 'value' }, message.lastError || ''))),
    'Nothing sent yet.');
}

async function answerApproval(approval, behavior) {
  try {
    await api(state.node.base, `/approvals/${encodeURIComponent(approval.id)}/answer`, { method: 'POST', body: { behavior } });
    toast(`${behavior === 'allow' ? 'Allowed' : 'Denied'}: ${approval.toolName}`);
    await loadMessages();
  } catch (error) { failed(error); }
}

async function markMessage(message, action) {
  try {
    await api(state.node.base, `/messages/inbox/${encodeURIComponent(message.id)}/${action}`,
              { method: 'POST', body: { from: message.from } });
    await loadMessages();
  } catch (error) { failed(error); }
}

// MARK: Targets: local nodes, and the selected node's peers through it

async function targets() {
  const list = state.nodes.filter((node) => node.reachable)
    .map((node) => ({ label: node.name + ' (local)', base: node.base }));
  const peers = await api(state.node.base, '/peers').catch(() => ({ peers: [] }));
  const localIds = new Set(state.nodes.map((node) => node.nodeId));
  for (const peer of peers.peers) {
    if (localIds.has(peer.nodeId) && state.mode === 'standalone') continue;
    list.push({ label: `${peer.name} (peer, ${peer.status})`,
                base: state.node.base + '/peers/' + encodeURIComponent(peer.nodeId) });
  }
  return list;
}

// Fills a <select> with [{value, label}], keeping the choice when it is still there. An
// unchanged list stays as it is: a control must not be replaced under the user's pointer.
function fillOptions(select, options, fallback) {
  const chosen = select.value;
  const same = select.options.length === options.length
    && options.every((option, index) => select.options[index].value === option.value
                                        && select.options[index].textContent === option.label);
  if (!same) {
    select.replaceChildren(...options.map((option) => el('option', { value: option.value }, option.label)));
  }
  if (options.some((option) => option.value === chosen)) select.value = chosen;
  else if (fallback !== undefined && options.some((option) => option.value === fallback)) select.value = fallback;
}

function fillTargets(select, list) {
  fillOptions(select, list.map((target) => ({ value: target.base, label: target.label })), state.node.base);
}

// MARK: AI tasks

function wireTasks() {
  $('task-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const base = $('task-target').value;
    const body = { prompt: $('task-prompt').value, permissionMode: $('task-mode').value };
    const cwd = $('task-cwd').value.trim();
    if (cwd) body.cwd = cwd;
    try {
      const task = await api(base, '/ai-tasks', { method: 'POST', body });
      toast('Task ' + shortId(task.id) + ' started');
      $('task-prompt').value = '';
      await loadTasks();
      openTask(base, task.id);
    } catch (error) { failed(error); }
  });
  $('task-cancel').addEventListener('click', async () => {
    if (!state.taskId) return;
    try {
      await api(state.taskBase, '/ai-tasks/' + encodeURIComponent(state.taskId), { method: 'DELETE' });
      toast('Cancelled');
      await loadTasks();
    } catch (error) { failed(error); }
  });
}

async function loadTasks() {
  fillTargets($('task-target'), await targets());
  const base = state.node.base;
  const list = await api(base, '/ai-tasks?limit=50');
  table($('tasks-table'), ['Task', 'Prompt', 'State', 'Started', 'Waiting for you', ''], list.tasks.map((task) =>
    el('tr', { class: task.id === state.taskId ? 'selected' : '' },
       el('td', {}, el('code', {}, shortId(task.id))),
       el('td', { class: 'value' }, task.prompt),
       el('td', {}, badge(task.state)),
       el('td', {}, ago(task.createdAt)),
       el('td', {}, task.pendingApprovals && task.pendingApprovals.length ? badge('waiting') : ''),
       el('td', {}, el('button', { type: 'button', class: 'small secondary', 'aria-label': 'Open task ' + shortId(task.id),
                                   onclick: () => openTask(base, task.id) }, 'Open')))),
    'No tasks yet.');
  if (state.taskId && state.taskBase) await refreshTask();
}

function stopTask() {
  if (state.taskStream) state.taskStream.abort();
  state.taskStream = null;
}

function openTask(base, id) {
  stopTask();
  state.taskId = id;
  state.taskBase = base;
  $('task-detail').hidden = false;
  $('task-detail-title').textContent = 'Task ' + shortId(id);
  $('task-approvals').dataset.requests = '';
  $('task-approvals').replaceChildren();
  $('task-stream').replaceChildren();
  const controller = new AbortController();
  state.taskStream = controller;
  let since = 0;
  const url = () => base + '/ai-tasks/' + encodeURIComponent(id) + '/stream?since=' + since;
  (async () => {
    // Resumes after the last event seen: if the connection breaks while the task runs, and
    // when a long history comes in pieces (the daemon ends a stream after a page of it).
    for (let failures = 0; failures < 30 && !controller.signal.aborted;) {
      const before = since;
      try {
        await readStream(url(), controller.signal, (type, data, eventId) => {
          // An event already shown (a broken or hostile peer repeating itself) is skipped, and
          // only a larger id counts as progress.
          const number = eventId ? Number(eventId) : NaN;
          if (Number.isSafeInteger(number)) {
            if (number <= since) return;
            since = number;
          }
          appendTaskEvent(type, data);
          if (type === 'permission_request' || type === 'permission_decision' || type === 'exit') refreshTask();
        });
        if (since === before) return;  // nothing more: the task ended and the stream with it
        continue;
      } catch (error) {
        if (controller.signal.aborted || error.status === 404) return;
        failures++;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  refreshTask();
}

function appendTaskEvent(type, data) {
  let text = data;
  try {
    const value = JSON.parse(data);
    if (type === 'text' || type === 'thinking') text = value.text;
    else if (type === 'output') text = value.text || value.line || data;
    else text = JSON.stringify(value);
  } catch (error) { /* keep the raw line */ }
  const log = $('task-stream');
  const nearBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
  log.append(el('span', { class: type === 'text' ? '' : 'meta' }, `[${type}] `), String(text), '\n');
  if (nearBottom) log.scrollTop = log.scrollHeight;
}

async function refreshTask() {
  if (!state.taskId) return;
  let task;
  try {
    task = await api(state.taskBase, '/ai-tasks/' + encodeURIComponent(state.taskId));
  } catch (error) { failed(error); return; }
  if (task.id !== state.taskId) return;
  $('task-state').replaceChildren('State: ', badge(task.state),
    task.error ? ' ' + task.error : '', task.costUsd ? ` · $${task.costUsd.toFixed(4)}` : '');
  $('task-cancel').textContent = task.isFinished ? 'Delete task' : 'Cancel task';
  const pending = task.pendingApprovals || [];
  const shown = $('task-approvals').dataset.requests || '';
  const now = pending.map((request) => request.requestId).join(' ');
  if (shown === now) return;  // the same requests: leave their buttons where they are
  $('task-approvals').dataset.requests = now;
  $('task-approvals').replaceChildren(...pending.map((request) =>
    el('div', { class: 'approval', role: 'group', 'aria-label': 'Permission request for ' + request.toolName },
       el('strong', {}, 'Claude asks to use ' + request.toolName),
       el('pre', {}, JSON.stringify(request.toolInput, null, 2)),
       el('button', { type: 'button', onclick: () => decide(request, true) }, 'Approve'), ' ',
       el('button', { type: 'button', class: 'danger', onclick: () => decide(request, false) }, 'Deny'))));
}

async function decide(request, approved) {
  try {
    await api(state.taskBase, '/ai-tasks/' + encodeURIComponent(state.taskId) + '/approve', {
      method: 'POST',
      body: { requestId: request.requestId, approved, message: approved ? undefined : 'Denied in the dashboard' } });
    toast(approved ? 'Approved' : 'Denied');
    await refreshTask();
  } catch (error) { failed(error); }
}

// MARK: Terminal

// Splits a command line into words: whitespace separates, quotes group, backslash escapes.
// No shell runs it: the first word is the program.
function words(line) {
  const result = [];
  let current = null;
  let quote = null;
  for (let index = 0; index < line.length; index++) {
    const char = line[index];
    if (quote) {
      if (char === quote) quote = null;
      else if (char === '\\' && quote === '"' && index + 1 < line.length) current += line[++index];
      else current += char;
    } else if (char === '"' || char === "'") {
      quote = char;
      current = current || '';
    } else if (char === '\\' && index + 1 < line.length) {
      current = (current || '') + line[++index];
    } else if (/\s/.test(char)) {
      if (current !== null) result.push(current);
      current = null;
    } else {
      current = (current || '') + char;
    }
  }
  if (quote) throw new Error('unclosed ' + quote);
  if (current !== null) result.push(current);
  return result;
}

function wireTerminal() {
  $('terminal-form').addEventListener('submit', (event) => {
    event.preventDefault();
    runCommand().catch(failed);
  });
  $('terminal-stop').addEventListener('click', () => {
    if (state.terminal) state.terminal.abort();
  });
}

async function loadTerminal() {
  fillTargets($('terminal-target'), await targets());
}

function terminalWrite(text, kind) {
  const log = $('terminal-output');
  const nearBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
  log.append(kind ? el('span', { class: kind }, text) : text);
  if (nearBottom) log.scrollTop = log.scrollHeight;
}

async function runCommand() {
  if (state.terminal) return;
  let argv;
  try {
    argv = words($('terminal-command').value);
  } catch (error) {
    toast(error.message, true);
    return;
  }
  if (!argv.length) return;
  const base = $('terminal-target').value;
  const body = { command: argv[0], args: argv.slice(1) };
  const cwd = $('terminal-cwd').value.trim();
  if (cwd) body.cwd = cwd;
  const controller = new AbortController();
  state.terminal = controller;
  $('terminal-run').disabled = true;
  $('terminal-stop').disabled = false;
  $('terminal-output').replaceChildren();
  terminalWrite('$ ' + argv.join(' ') + '\n', 'meta');
  $('terminal-status').textContent = 'Running…';
  try {
    const response = await api(base, '/execute/stream', { method: 'POST', body, raw: true, signal: controller.signal });
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      throw new Error(data && data.error ? data.error.message : 'HTTP ' + response.status);
    }
    await readEvents(response.body, (type, data) => {
      const value = JSON.parse(data);
      if (type === 'stdout' || type === 'stderr') {
        const text = value.text !== undefined && value.text !== null ? value.text : atob(value.base64 || '');
        terminalWrite(text, type === 'stderr' ? 'stderr' : null);
      } else if (type === 'exit') {
        const how = value.signal ? 'killed by ' + value.signal : 'exit code ' + value.exitCode;
        $('terminal-status').textContent = `Finished: ${how} in ${Math.round(value.durationMs)} ms`
          + (value.timedOut ? ' (timed out)' : '') + (value.truncated ? ' (output truncated)' : '');
      }
    });
  } catch (error) {
    if (error.name === 'AbortError') $('terminal-status').textContent = 'Stopped.';
    else {
      $('terminal-status').textContent = 'Failed: ' + error.message;
      failed(error);
    }
  } finally {
    state.terminal = null;
    $('terminal-run').disabled = false;
    $('terminal-stop').disabled = true;
  }
}

// Reads a text/event-stream body, calling handle(type, data) per event.
async function readEvents(body, handle) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = 'message';
      let id = null;
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) type = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
        else if (line.startsWith('id: ')) id = line.slice(4);
      }
      if (data.length) handle(type, data.join('\n'), id);
    }
  }
}

document.addEventListener('DOMContentLoaded', () => { boot().catch((error) => showLogin(error.message)); });
