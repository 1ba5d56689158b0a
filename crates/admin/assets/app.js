'use strict';
// ferrymq management dashboard. Plain ES2020 without dependencies: the broker serves it from
// memory (include_str!), so it must work offline. It talks to the RabbitMQ-shaped API under /api/.
// User data only ever reaches the page through textContent/attributes, never through innerHTML.

const REFRESH_MS = 5000;            // poll period of the current view
const HISTORY_MS = 10 * 60 * 1000;  // time window of the overview charts
const PAGE_SIZE = 100;              // queues per page (paged on the server)
const AUTH_KEY = 'ferrymq.auth';    // sessionStorage key holding the Basic Authorization value
const FORBIDDEN = "your user's tags do not allow this";

const $ = (sel, root = document) => root.querySelector(sel);
const enc = encodeURIComponent;

const state = {
  auth: null,          // "Basic ..." header value, null when logged out
  route: {view: 'overview', args: []},
  builtView: null,     // view whose skeleton is currently in #view
  lastData: null,      // last data rendered, to re-render at once on local UI changes
  overview: null,      // last /api/overview answer (header, totals, charts)
  history: [],         // chart samples, oldest first, pruned to HISTORY_MS
  queuePage: 1,
  queueFilter: '',
  open: new Set(),     // expanded topic/group rows ("topic:<name>", "group:<id>")
  scrollToDetail: false,
};

/* ---------- formatting ---------- */

const intFmt = new Intl.NumberFormat('en-US');
const rateFmt = new Intl.NumberFormat('en-US', {minimumFractionDigits: 1, maximumFractionDigits: 1});
const compactFmt = new Intl.NumberFormat('en-US', {notation: 'compact', maximumFractionDigits: 1});
const n0 = v => Number(v) || 0;  // missing counters count as 0
const fmtNum = v => intFmt.format(n0(v));
const fmtRate = v => rateFmt.format(n0(v)) + '/s';
const rateOf = (stats, key) => n0(stats?.[key + '_details']?.rate);
const fmtBool = v => (v ? 'yes' : 'no');
const clock = d => d.toLocaleTimeString('en-GB', {hour12: false});
const fmtValue = v => (typeof v === 'string' ? v : JSON.stringify(v));
const fmtArgs = obj => Object.entries(obj || {}).map(([k, v]) => `${k}: ${fmtValue(v)}`).join(', ');
const exchangeLabel = name => (name === '' ? '(AMQP default)' : name);
const hostPort = (host, port) => (String(host).includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

function fmtBytes(v) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = n0(v), i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? rateFmt.format(n) : intFmt.format(n)) + ' ' + units[i];
}

function fmtDuration(ms) {
  const v = Number(ms);
  if (ms == null || ms === '') return '';
  if (v < 0) return 'forever';
  for (const [unit, size] of [['d', 86400000], ['h', 3600000], ['min', 60000], ['s', 1000]]) {
    if (v >= size) return `${rateFmt.format(v / size).replace(/\.0$/, '')} ${unit}`;
  }
  return `${v} ms`;
}

/* ---------- DOM helpers ---------- */

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...kids.flat().filter(kid => kid != null));
  return el;
}

function svgEl(tag, attrs = {}, text) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text != null) el.textContent = text;
  return el;
}

// Writes only when the text changed, so unchanged cells are left alone (no reflow, selection kept).
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function setProps(el, pairs, emptyText = 'none') {
  const kids = pairs.flatMap(([k, v]) => [h('dt', {text: k}), h('dd', {text: v})]);
  el.replaceChildren(...(kids.length ? kids : [h('dd', {class: 'muted', text: emptyText})]));
}

const panel = (title, ...kids) => h('section', {class: 'panel'}, title ? h('h2', {text: title}) : null, ...kids);
const field = (label, input) => h('label', {class: 'field'}, h('span', {text: label}), input);

/* ---------- API ---------- */

class ApiError extends Error {
  constructor(status, reason) { super(reason); this.status = status; }
}

// credentials:'omit' stops the browser from answering a 401 with its own basic-auth prompt and
// from sending cached credentials; the explicit Authorization header is still sent.
async function api(path, {method = 'GET', body, headers = {}, auth = state.auth} = {}) {
  const init = {method, credentials: 'omit', cache: 'no-store',
    headers: {Accept: 'application/json', Authorization: auth || '', ...headers}};
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch('/api' + path, init).catch(() => { throw new ApiError(0, 'the server cannot be reached'); });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!res.ok) throw new ApiError(res.status, data?.reason || data?.error || `HTTP ${res.status} ${res.statusText}`);
  return data;
}

function basicAuth(user, pass) {
  // btoa only takes Latin-1: encode as UTF-8 first so that any username or password works.
  const bytes = new TextEncoder().encode(`${user}:${pass}`);
  return 'Basic ' + btoa(String.fromCharCode(...bytes));
}

const queuePath = (vhost, name) => `/queues/${enc(vhost)}/${enc(name)}`;
const queueHash = (vhost, name) => `#/queues/${enc(vhost)}/${enc(name)}`;

/* ---------- banners ---------- */

let bannerSource = null;  // 'poll' or 'action': a good poll clears only its own error
let flashTimer = null;

function showError(message, source = 'action') {
  bannerSource = source;
  setText($('#error-text'), message);
  $('#error-banner').hidden = false;
}

function clearError(source) {
  if (source && bannerSource !== source) return;
  bannerSource = null;
  $('#error-banner').hidden = true;
}

function flash(message) {
  const el = Object.assign($('#flash'), {textContent: message, hidden: false});
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

// Runs a user action, reports a failure in the banner, and refreshes the view at once.
async function act(work, success) {
  try {
    const result = await work();
    clearError('action');
    const message = typeof success === 'function' ? success(result) : success;
    if (message) flash(message);
    return result;
  } catch (e) {
    if (e.status === 401) logout('Your credentials were rejected; please log in again.');
    else showError(e.status === 403 ? `Access refused: ${FORBIDDEN}.` : `Failed: ${e.message}`);
    return undefined;
  } finally {
    refreshNow();
  }
}

/* ---------- tables, updated in place ---------- */

// Column builders. value() gives the text shown; raw() (numbers) is also put in data-value so that
// scripts need not parse "1,234"; href/click/badge choose what element holds the text.
const txt = (col, label, get = it => it[col], extra = {}) => ({col, label, value: it => String(get(it) ?? ''), ...extra});
const num = (col, label, get = it => it[col]) => ({col, label, cls: 'num', value: it => fmtNum(get(it)), raw: it => n0(get(it))});
const rate = (col, label, get) => ({col, label, cls: 'num', value: it => fmtRate(get(it)), raw: it => n0(get(it))});
const bytes = (col, label, get = it => it[col]) => ({col, label, cls: 'num', value: it => fmtBytes(get(it)), raw: it => n0(get(it))});
const bool = (col, label, get = it => it[col]) => ({col, label, cls: 'center', value: it => fmtBool(get(it))});
const badge = (col, label, get = it => it[col]) => ({col, label, badge: true, value: it => String(get(it) ?? '')});

function table(id, spec) {
  const heads = spec.cols.map(c => h('th', {class: c.cls, text: c.label}));
  if (spec.actions) heads.push(h('th', {class: 'actions'}));
  return h('div', {class: 'table-wrap'},
    h('table', {id, class: 'grid'}, h('thead', {}, h('tr', {}, heads)), h('tbody')));
}

function newRow(spec, key) {
  const tr = h('tr', {[`data-${spec.attr}`]: key});
  for (const col of spec.cols) {
    const td = h('td', {'data-col': col.col, class: col.cls});
    if (col.href) td.append(h('a', {href: '#'}));
    else if (col.click) td.append(h('button', {type: 'button', class: 'link', onclick: () => col.click(tr._item)}));
    else if (col.badge) td.append(h('span', {class: 'badge'}));
    tr.append(td);
  }
  if (spec.actions) {
    // Handlers read tr._item, which each refresh replaces, so they always act on fresh data.
    tr.append(h('td', {class: 'actions'}, spec.actions.map(a => h('button', {
      type: 'button', 'data-action': a.action, class: a.cls, title: a.title, text: a.label,
      onclick: () => a.run(tr._item),
    }))));
  }
  return tr;
}

function updateCell(td, col, item) {
  const text = col.value(item);
  const target = td.firstElementChild || td;
  setText(target, text);
  if (col.href && target.getAttribute('href') !== col.href(item)) target.setAttribute('href', col.href(item));
  if (col.badge) target.className = 'badge state-' + text.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  if (col.raw && td.dataset.value !== String(col.raw(item))) td.dataset.value = String(col.raw(item));
}

// Reconciles the rows of a <tbody> with `items`, keyed by spec.key: rows are reused, moved and
// patched rather than rebuilt, so a refresh does not flash, and focus, selection, scroll position
// and open detail rows survive. spec.detail adds an expandable row under a main row.
function syncRows(tbody, items, spec) {
  const attr = `data-${spec.attr}`;
  const old = new Map();
  for (const tr of tbody.children) if (tr.hasAttribute(attr)) old.set(tr.getAttribute(attr), tr);
  let cursor = tbody.firstChild;  // every node before it is in its final place
  const place = node => {
    if (node === cursor) cursor = cursor.nextSibling;
    else tbody.insertBefore(node, cursor);
  };
  const seen = new Set();
  for (const item of items) {
    const key = spec.key(item);
    if (seen.has(key)) continue;
    seen.add(key);
    const tr = old.get(key) || newRow(spec, key);
    tr._item = item;
    spec.cols.forEach((col, i) => updateCell(tr.cells[i], col, item));
    if (spec.selected) tr.classList.toggle('selected', spec.selected(item));
    place(tr);
    const open = spec.detail?.isOpen(item);
    tr.classList.toggle('open', !!open);
    if (open) {
      if (!tr._detail) {
        tr._detail = h('tr', {class: 'detail'}, h('td', {colspan: tr.cells.length}, spec.detail.build(item)));
      }
      spec.detail.update(tr._detail.firstChild.firstChild, item);
      place(tr._detail);
    } else if (tr._detail) {
      if (cursor === tr._detail) cursor = cursor.nextSibling;
      tr._detail.remove();
      tr._detail = null;
    }
  }
  if (!seen.size && spec.empty) {
    const colspan = spec.cols.length + (spec.actions ? 1 : 0);
    place(cursor?.classList?.contains('empty') ? cursor : h('tr', {class: 'empty'}, h('td', {colspan, text: spec.empty})));
  }
  while (cursor) {  // whatever is left is stale: rows gone from the data, their detail rows
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

const tbodyOf = (id, root = document) => $(`#${id} > tbody`, root);

function toggleOpen(key) {
  if (!state.open.delete(key)) state.open.add(key);
  if (state.lastData) VIEWS[state.builtView].render(state.lastData, state.route);
}

/* ---------- charts (inline SVG) ---------- */

const RATE_SERIES = [
  {key: 'publish', label: 'Publish', cls: 'c0'},
  {key: 'deliver_get', label: 'Deliver / get', cls: 'c1'},
  {key: 'ack', label: 'Ack', cls: 'c2'},
];
const DEPTH_SERIES = [
  {key: 'ready', label: 'Ready', cls: 'c0'},
  {key: 'unacked', label: 'Unacked', cls: 'c3'},
];

function recordOverview(ov) {
  state.overview = ov;
  const ms = ov.message_stats || {}, qt = ov.queue_totals || {}, now = Date.now();
  state.history.push({
    t: now, publish: rateOf(ms, 'publish'), deliver_get: rateOf(ms, 'deliver_get'), ack: rateOf(ms, 'ack'),
    ready: n0(qt.messages_ready), unacked: n0(qt.messages_unacknowledged),
  });
  while (state.history.length && (state.history[0].t < now - HISTORY_MS || state.history.length > 2000)) state.history.shift();
  const product = [ov.product_name || 'ferrymq', ov.product_version].filter(Boolean).join(' ');
  setText($('#node-info'), ov.node ? `${product} · ${ov.node}` : product);
  $('#node-info').title = ov.rabbitmq_version ? `RabbitMQ ${ov.rabbitmq_version} compatible management API` : '';
}

// Smallest of 1, 2, 5 x 10^k that is >= v: round gridline values.
function niceStep(v) {
  const e = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map(m => m * e).find(s => s >= v * (1 - 1e-9));
}

function drawChart(svg, legend, series, valueFmt, minStep) {
  const W = Math.max(320, Math.round(svg.getBoundingClientRect().width)), H = 220;
  const P = {l: 48, r: 14, t: 12, b: 26};
  const now = Date.now(), t0 = now - HISTORY_MS, pts = state.history;
  let max = 0;
  for (const p of pts) for (const s of series) max = Math.max(max, p[s.key]);
  const step = niceStep(Math.max(max / 4, minStep)), top = step * 4;
  const x = t => P.l + ((t - t0) / HISTORY_MS) * (W - P.l - P.r);
  const y = v => H - P.b - (v / top) * (H - P.t - P.b);
  const nodes = [];
  for (let i = 0; i <= 4; i++) {
    const yy = y(step * i).toFixed(1);
    nodes.push(svgEl('line', {x1: P.l, x2: W - P.r, y1: yy, y2: yy, class: i ? 'grid' : 'axis'}));
    nodes.push(svgEl('text', {x: P.l - 6, y: Number(yy) + 4, 'text-anchor': 'end', class: 'tick'}, compactFmt.format(step * i)));
  }
  // A time label every two minutes on round minutes, so labels do not drift between polls.
  for (let t = Math.ceil(t0 / 120000) * 120000; t <= now; t += 120000) {
    const xx = x(t).toFixed(1);
    nodes.push(svgEl('line', {x1: xx, x2: xx, y1: H - P.b, y2: H - P.b + 4, class: 'axis'}));
    nodes.push(svgEl('text', {x: xx, y: H - 8, 'text-anchor': 'middle', class: 'tick'}, clock(new Date(t)).slice(0, 5)));
  }
  for (const s of series) {
    let d = '', prev = -Infinity;
    for (const p of pts) {
      // A missed poll breaks the line rather than drawing a straight bridge over the gap.
      d += `${p.t - prev > 3 * REFRESH_MS ? 'M' : 'L'}${x(p.t).toFixed(1)},${y(p[s.key]).toFixed(1)}`;
      prev = p.t;
    }
    if (!d) continue;
    const last = pts[pts.length - 1];
    nodes.push(svgEl('path', {d, class: `line ${s.cls}`}));
    nodes.push(svgEl('circle', {cx: x(last.t).toFixed(1), cy: y(last[s.key]).toFixed(1), r: 3, class: `dot ${s.cls}`}));
  }
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.replaceChildren(...nodes);
  const last = pts[pts.length - 1];
  legend.replaceChildren(...series.map(s => h('span', {class: `legend-item ${s.cls}`, 'data-series': s.key},
    h('i', {class: 'swatch'}), `${s.label} `, h('b', {text: last ? valueFmt(last[s.key]) : '–'}))));
}

function drawCharts() {
  if (state.builtView !== 'overview' || $('#view-body').hidden) return;
  drawChart($('#chart-rates'), $('#legend-rates'), RATE_SERIES, fmtRate, 0.25);
  drawChart($('#chart-depth'), $('#legend-depth'), DEPTH_SERIES, fmtNum, 1);
}

/* ---------- views ---------- */

const VIEWS = {};

const TOTALS = [
  ['messages_ready', 'Ready', ov => ov.queue_totals?.messages_ready],
  ['messages_unacknowledged', 'Unacked', ov => ov.queue_totals?.messages_unacknowledged],
  ['messages', 'Total messages', ov => ov.queue_totals?.messages],
  ['connections', 'Connections', ov => ov.object_totals?.connections],
  ['channels', 'Channels', ov => ov.object_totals?.channels],
  ['queues', 'Queues', ov => ov.object_totals?.queues],
  ['exchanges', 'Exchanges', ov => ov.object_totals?.exchanges],
  ['consumers', 'Consumers', ov => ov.object_totals?.consumers],
];

const LISTENERS = {
  attr: 'listener', key: l => `${l.protocol}/${l.ip_address}/${l.port}`, empty: 'No listeners',
  cols: [txt('protocol', 'Protocol'), txt('ip_address', 'Bound to'), txt('port', 'Port')],
};

VIEWS.overview = {
  build(root) {
    root.append(
      h('section', {id: 'overview-totals', class: 'cards'}, TOTALS.map(([key, label]) =>
        h('div', {class: 'card', 'data-stat': key}, h('div', {class: 'card-label', text: label}), h('div', {class: 'card-value', text: '–'})))),
      h('div', {class: 'charts'},
        panel('Message rates', h('div', {id: 'legend-rates', class: 'legend'}),
          svgEl('svg', {id: 'chart-rates', class: 'chart', role: 'img', 'aria-label': 'message rates, last 10 minutes'})),
        panel('Queued messages', h('div', {id: 'legend-depth', class: 'legend'}),
          svgEl('svg', {id: 'chart-depth', class: 'chart', role: 'img', 'aria-label': 'queued messages, last 10 minutes'}))),
      panel('Node', h('div', {class: 'detail-grid'}, h('dl', {id: 'node-props', class: 'props'}), table('listeners-table', LISTENERS))));
  },
  load: async () => null,  // the overview is fetched by every refresh anyway
  render() {
    const ov = state.overview;
    if (!ov) return;
    for (const [key, , get] of TOTALS) {
      const card = $(`[data-stat="${key}"]`);
      setText(card.lastChild, fmtNum(get(ov)));
      card.dataset.value = String(n0(get(ov)));
    }
    drawCharts();
    setProps($('#node-props'), [
      ['Node', ov.node], ['Cluster', ov.cluster_name], ['Product', ov.product_name], ['Version', ov.product_version],
      ['RabbitMQ compatibility', ov.rabbitmq_version], ['Management API', ov.management_version],
    ].filter(([, v]) => v != null));
    syncRows(tbodyOf('listeners-table'), ov.listeners || [], LISTENERS);
  },
};

/* Queues */

const QUEUES = {
  attr: 'queue', key: q => `${q.vhost}/${q.name}`, empty: 'No queues',
  selected: q => state.route.args[0] === q.vhost && state.route.args[1] === q.name,
  cols: [
    txt('vhost', 'Virtual host'),
    txt('name', 'Name', q => q.name, {href: q => queueHash(q.vhost, q.name)}),
    txt('type', 'Type', q => q.type || 'classic'),
    badge('state', 'State'),
    num('messages_ready', 'Ready'),
    num('messages_unacknowledged', 'Unacked'),
    num('messages', 'Total'),
    num('consumers', 'Consumers'),
    rate('publish_rate', 'Publish', q => rateOf(q.message_stats, 'publish')),
    rate('deliver_rate', 'Deliver / get', q => rateOf(q.message_stats, 'deliver_get')),
  ],
  actions: [
    {action: 'publish', label: 'Publish', title: 'Publish a message to this queue', run: openPublish},
    {action: 'get', label: 'Get', title: 'Get one message (it is removed from the queue)', run: getMessage},
    {action: 'purge', label: 'Purge', cls: 'danger', title: 'Remove all ready messages', run: purgeQueue},
    {action: 'delete', label: 'Delete', cls: 'danger', title: 'Delete the queue', run: deleteQueue},
  ],
};

const QUEUE_BINDINGS = {
  attr: 'binding', key: b => `${b.source}/${b.properties_key ?? b.routing_key}`, empty: 'No bindings',
  cols: [txt('source', 'From exchange', b => exchangeLabel(b.source)), txt('routing_key', 'Routing key'),
    txt('arguments', 'Arguments', b => fmtArgs(b.arguments))],
};

const CONSUMERS = {
  attr: 'consumer', key: c => `${c.channel_details?.name}/${c.consumer_tag}`, empty: 'No consumers',
  cols: [txt('consumer_tag', 'Consumer tag'), txt('channel', 'Channel', c => c.channel_details?.name),
    bool('ack_required', 'Ack required'), num('prefetch_count', 'Prefetch'), bool('exclusive', 'Exclusive'),
    txt('arguments', 'Arguments', c => fmtArgs(c.arguments))],
};

VIEWS.queues = {
  build(root) {
    let debounce = null;
    const filter = h('input', {id: 'queue-filter', type: 'search', placeholder: 'Filter by name', value: state.queueFilter,
      oninput: () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => { state.queueFilter = filter.value; state.queuePage = 1; refreshNow(); }, 300);
      }});
    const turn = delta => () => { state.queuePage = Math.max(1, state.queuePage + delta); refreshNow(); };
    root.append(
      panel(null, h('form', {id: 'declare-form', class: 'inline-form', onsubmit: declareQueue},
        h('strong', {class: 'form-title', text: 'Add a queue'}),
        field('Virtual host', h('select', {id: 'declare-vhost'})),
        field('Name', h('input', {id: 'declare-name', type: 'text', required: true, autocomplete: 'off'})),
        field('Type', h('select', {id: 'declare-type', onchange: syncDurable},
          ['classic', 'quorum', 'stream'].map(t => h('option', {value: t, text: t})))),
        h('label', {class: 'check'}, h('input', {id: 'declare-durable', type: 'checkbox', checked: true}), 'Durable'),
        h('button', {id: 'declare-submit', type: 'submit', class: 'primary', text: 'Add queue'}))),
      h('section', {id: 'queue-detail', class: 'panel', hidden: true}),
      panel(null,
        h('div', {class: 'toolbar'}, h('h2', {text: 'Queues'}), h('span', {id: 'queue-count', class: 'muted'}),
          h('span', {class: 'spacer'}), filter,
          h('span', {id: 'queue-pager', class: 'pager', hidden: true},
            h('button', {id: 'queue-prev', type: 'button', text: '‹ Prev', onclick: turn(-1)}),
            h('span', {id: 'queue-page'}),
            h('button', {id: 'queue-next', type: 'button', text: 'Next ›', onclick: turn(1)}))),
        table('queues-table', QUEUES)));
  },
  async load(route) {
    const params = new URLSearchParams({page: state.queuePage, page_size: PAGE_SIZE, use_regex: 'false'});
    if (state.queueFilter) params.set('name', state.queueFilter);
    const [vhost, name] = route.args;
    const detail = route.args.length === 2
      ? Promise.all([api(queuePath(vhost, name)), api(queuePath(vhost, name) + '/bindings')])
        .catch(e => { if (e.status === 404) return 'missing'; throw e; })
      : null;
    const [queues, vhosts, info] = await Promise.all([api('/queues?' + params), api('/vhosts'), detail]);
    return {queues, vhosts, info};
  },
  render({queues, vhosts, info}, route) {
    let page = queues;
    if (Array.isArray(queues)) {  // a server without paging: filter here, show one page
      const items = queues.filter(q => q.name.includes(state.queueFilter));
      page = {items, page: 1, page_count: 1, filtered_count: items.length, total_count: queues.length};
    }
    const pageCount = Math.max(1, n0(page.page_count));
    if (state.queuePage > pageCount) { state.queuePage = pageCount; refreshNow(); }
    syncRows(tbodyOf('queues-table'), page.items || [], QUEUES);
    const total = page.total_count ?? page.item_count ?? (page.items || []).length;
    const shown = page.filtered_count ?? total;
    setText($('#queue-count'), shown === total ? fmtNum(total) : `${fmtNum(shown)} of ${fmtNum(total)}`);
    $('#queue-pager').hidden = pageCount <= 1;
    setText($('#queue-page'), `page ${fmtNum(page.page || 1)} of ${fmtNum(pageCount)}`);
    $('#queue-prev').disabled = (page.page || 1) <= 1;
    $('#queue-next').disabled = (page.page || 1) >= pageCount;
    fillVhosts(vhosts || []);
    renderQueueDetail(info, route);
  },
};

function fillVhosts(vhosts) {
  const sel = $('#declare-vhost'), names = vhosts.map(v => v.name);
  if (sel.dataset.names === names.join('\n')) return;  // unchanged: keep the user's choice alone
  const current = sel.value;
  sel.replaceChildren(...names.map(n => h('option', {value: n, text: n})));
  sel.dataset.names = names.join('\n');
  if (names.includes(current)) sel.value = current;
}

// Quorum and stream queues are always durable.
function syncDurable() {
  const box = $('#declare-durable'), classic = $('#declare-type').value === 'classic';
  if (!classic) box.checked = true;
  box.disabled = !classic;
}

function renderQueueDetail(info, route) {
  const el = $('#queue-detail');
  if (!info) {
    el.hidden = true;
    el.replaceChildren();
    el.dataset.queue = '';
    return;
  }
  const [vhost, name] = route.args, key = `${vhost}/${name}`;
  const head = h('div', {class: 'panel-head'},
    h('h2', {}, 'Queue ', h('span', {class: 'mono', text: name}), h('span', {class: 'muted', text: ` in vhost ${vhost}`})),
    h('a', {id: 'queue-detail-close', href: '#/queues', text: 'close'}));
  el.hidden = false;
  if (info === 'missing') {
    el.dataset.queue = '';
    el.replaceChildren(head, h('p', {class: 'muted', text: 'This queue does not exist (any more).'}));
    return;
  }
  if (el.dataset.queue !== key) {  // skeleton built once per opened queue, then patched
    el.dataset.queue = key;
    el.replaceChildren(head,
      h('div', {class: 'detail-grid'},
        h('div', {}, h('h3', {text: 'Properties'}), h('dl', {id: 'queue-props', class: 'props'})),
        h('div', {}, h('h3', {text: 'Arguments'}), h('dl', {id: 'queue-args', class: 'props'}))),
      h('h3', {text: 'Bindings'}), table('queue-bindings-table', QUEUE_BINDINGS),
      h('h3', {text: 'Consumers'}), table('consumers-table', CONSUMERS));
  }
  const [q, bindings] = info;
  setProps($('#queue-props'), [
    ['Type', q.type || 'classic'], ['State', q.state || ''], ['Durable', fmtBool(q.durable)],
    ['Auto-delete', fmtBool(q.auto_delete)], ['Exclusive', fmtBool(q.exclusive)],
    ['Ready', fmtNum(q.messages_ready)], ['Unacked', fmtNum(q.messages_unacknowledged)],
    ['Total', fmtNum(q.messages)], ['Consumers', fmtNum(q.consumers)],
  ]);
  setProps($('#queue-args'), Object.entries(q.arguments || {}).map(([k, v]) => [k, fmtValue(v)]));
  syncRows(tbodyOf('queue-bindings-table'), bindings || [], QUEUE_BINDINGS);
  syncRows(tbodyOf('consumers-table'), q.consumer_details || [], CONSUMERS);
  if (state.scrollToDetail) {
    state.scrollToDetail = false;
    el.scrollIntoView({block: 'start', behavior: 'smooth'});
  }
}

function declareQueue(ev) {
  ev.preventDefault();
  const vhost = $('#declare-vhost').value, name = $('#declare-name').value.trim(), type = $('#declare-type').value;
  if (!name) return;
  const body = {durable: $('#declare-durable').checked, auto_delete: false, arguments: {'x-queue-type': type}};
  act(() => api(queuePath(vhost, name), {method: 'PUT', body}), () => {
    $('#declare-name').value = '';
    return `Queue "${name}" declared.`;
  });
}

let publishTarget = null;

function openPublish(q) {
  publishTarget = q;
  setText($('#publish-target'), `${q.name} (vhost ${q.vhost})`);
  $('#publish-routing-key').value = q.name;
  $('#publish-payload').value = '';
  $('#publish-dialog').showModal();
  $('#publish-payload').focus();
}

function submitPublish(ev) {
  ev.preventDefault();
  $('#publish-dialog').close();
  const q = publishTarget;
  const body = {properties: {}, routing_key: $('#publish-routing-key').value,
    payload: $('#publish-payload').value, payload_encoding: 'string'};
  act(() => api(`/exchanges/${enc(q.vhost)}/amq.default/publish`, {method: 'POST', body}),
    r => (r?.routed ? 'Message published.' : 'Message published, but no queue received it (not routed).'));
}

function getMessage(q) {
  const body = {count: 1, ackmode: 'ack_requeue_false', encoding: 'auto', truncate: 50000};
  act(() => api(queuePath(q.vhost, q.name) + '/get', {method: 'POST', body}), msgs => {
    if (!msgs?.length) return `Queue "${q.name}" is empty.`;
    showMessage(q, msgs[0]);
    return null;
  });
}

function showMessage(q, m) {
  setText($('#message-source'), `${q.name} (vhost ${q.vhost})`);
  setProps($('#message-meta'), [
    ['Exchange', exchangeLabel(m.exchange ?? '')], ['Routing key', m.routing_key ?? ''],
    ['Redelivered', fmtBool(m.redelivered)], ['Payload', `${fmtNum(m.payload_bytes)} bytes, ${m.payload_encoding || 'string'}`],
    ['Left in queue', fmtNum(m.message_count)], ['Properties', fmtArgs(m.properties) || 'none'],
  ]);
  $('#message-payload').textContent = m.payload ?? '';
  $('#message-dialog').showModal();
}

function purgeQueue(q) {
  if (!confirm(`Purge all ready messages from queue "${q.name}" (vhost ${q.vhost})?`)) return;
  act(() => api(queuePath(q.vhost, q.name) + '/contents', {method: 'DELETE'}), `Queue "${q.name}" purged.`);
}

function deleteQueue(q) {
  if (!confirm(`Delete queue "${q.name}" (vhost ${q.vhost})? Its messages are lost.`)) return;
  if (state.route.args[0] === q.vhost && state.route.args[1] === q.name) {
    // Close its detail panel first (synchronously), or the next refresh would ask for a deleted queue.
    state.route = {view: 'queues', args: []};
    location.hash = '#/queues';
  }
  act(() => api(queuePath(q.vhost, q.name), {method: 'DELETE'}), `Queue "${q.name}" deleted.`);
}

/* Exchanges and bindings */

const EXCHANGES = {
  attr: 'exchange', key: e => `${e.vhost}/${e.name}`, empty: 'No exchanges',
  cols: [txt('vhost', 'Virtual host'), txt('name', 'Name', e => exchangeLabel(e.name)), txt('type', 'Type'),
    bool('durable', 'Durable'), bool('auto_delete', 'Auto-delete'), bool('internal', 'Internal'),
    txt('arguments', 'Arguments', e => fmtArgs(e.arguments))],
};

const BINDINGS = {
  attr: 'binding', empty: 'No bindings',
  key: b => `${b.vhost}/${b.source}/${b.destination_type}/${b.destination}/${b.properties_key ?? b.routing_key}`,
  cols: [txt('vhost', 'Virtual host'), txt('source', 'Source', b => exchangeLabel(b.source)), txt('destination', 'Destination'),
    txt('destination_type', 'Destination type'), txt('routing_key', 'Routing key'),
    txt('arguments', 'Arguments', b => fmtArgs(b.arguments))],
};

VIEWS.exchanges = {
  build(root) {
    root.append(panel('Exchanges', table('exchanges-table', EXCHANGES)), panel('Bindings', table('bindings-table', BINDINGS)));
  },
  async load() {
    const [exchanges, bindings] = await Promise.all([api('/exchanges'), api('/bindings')]);
    return {exchanges, bindings};
  },
  render({exchanges, bindings}) {
    syncRows(tbodyOf('exchanges-table'), exchanges || [], EXCHANGES);
    syncRows(tbodyOf('bindings-table'), bindings || [], BINDINGS);
  },
};

/* Connections and channels */

const CONNECTIONS = {
  attr: 'connection', key: c => c.name, empty: 'No connections',
  cols: [txt('name', 'Name', c => c.name, {cls: 'mono'}), txt('user', 'User'), txt('vhost', 'Virtual host'),
    txt('protocol', 'Protocol'), txt('peer', 'Peer', c => (c.peer_host == null ? '' : hostPort(c.peer_host, c.peer_port))),
    txt('client', 'Client', c => c.client_properties?.product ?? ''), num('channels', 'Channels'), badge('state', 'State'),
    bytes('recv_oct', 'Received'), bytes('send_oct', 'Sent')],
  actions: [{action: 'close', label: 'Close', cls: 'danger', title: 'Close this connection', run: closeConnection}],
};

const CHANNELS = {
  attr: 'channel', key: c => c.name, empty: 'No channels',
  cols: [txt('name', 'Name', c => c.name, {cls: 'mono'}), txt('user', 'User'), txt('vhost', 'Virtual host'),
    num('prefetch_count', 'Prefetch'), num('messages_unacknowledged', 'Unacked'), num('consumer_count', 'Consumers'),
    bool('confirm', 'Confirm'), badge('state', 'State')],
};

function closeConnection(c) {
  if (!confirm(`Close connection "${c.name}"?`)) return;
  act(() => api(`/connections/${enc(c.name)}`, {method: 'DELETE', headers: {'X-Reason': 'closed from the dashboard'}}),
    'Connection closed.');
}

VIEWS.connections = {
  build(root) {
    root.append(panel('Connections', table('connections-table', CONNECTIONS)), panel('Channels', table('channels-table', CHANNELS)));
  },
  async load() {
    const [connections, channels] = await Promise.all([api('/connections'), api('/channels')]);
    return {connections, channels};
  },
  render({connections, channels}) {
    syncRows(tbodyOf('connections-table'), connections || [], CONNECTIONS);
    syncRows(tbodyOf('channels-table'), channels || [], CHANNELS);
  },
};

/* Kafka topics */

const PARTITIONS = {
  attr: 'partition', key: p => `${p.topic}/${p.partition}`, empty: 'No partitions',
  cols: [num('partition', 'Partition'), num('log_start_offset', 'Log start offset'), num('log_end_offset', 'Log end offset'),
    num('high_watermark', 'High watermark'), num('messages', 'Messages', p => n0(p.log_end_offset) - n0(p.log_start_offset)),
    bytes('bytes', 'Size')],
};

const TOPICS = {
  attr: 'topic', key: t => t.name, empty: 'No topics',
  cols: [txt('name', 'Name', t => t.name, {click: t => toggleOpen('topic:' + t.name)}), num('partitions', 'Partitions'),
    num('messages', 'Messages'), bytes('bytes', 'Size'), rate('publish_rate', 'Publish', t => rateOf(t.message_stats, 'publish')),
    txt('retention', 'Retention', t => fmtDuration(t.configs?.['retention.ms'])),
    txt('cleanup_policy', 'Cleanup policy', t => t.configs?.['cleanup.policy'] ?? '')],
  actions: [{action: 'partitions', label: 'Partitions', cls: 'toggle', run: t => toggleOpen('topic:' + t.name)}],
  detail: {
    isOpen: t => state.open.has('topic:' + t.name),
    build: () => h('div', {class: 'nested'}, table(null, PARTITIONS), h('h4', {text: 'Configuration'}), h('dl', {class: 'props'})),
    update(el, t) {
      syncRows($('tbody', el), (t.partition_details || []).map(p => ({...p, topic: t.name})), PARTITIONS);
      setProps($('dl', el), Object.entries(t.configs || {}).sort().map(([k, v]) => [k, fmtValue(v)]));
    },
  },
};

VIEWS['kafka/topics'] = {
  build(root) { root.append(panel('Kafka topics', table('topics-table', TOPICS))); },
  load: () => api('/kafka/topics'),
  render(topics) { syncRows(tbodyOf('topics-table'), topics || [], TOPICS); },
};

/* Kafka consumer groups */

const MEMBERS = {
  attr: 'member', key: m => m.member_id, empty: 'No members',
  cols: [txt('member_id', 'Member', m => m.member_id, {cls: 'mono'}), txt('client_id', 'Client id'), txt('client_host', 'Host'),
    txt('group_instance_id', 'Instance id'),
    txt('assignments', 'Assigned partitions', m => (m.assignments || []).map(a => `${a.topic}-${a.partition}`).join(', '))],
};

const OFFSETS = {
  attr: 'offset', key: o => `${o.topic}/${o.partition}`, empty: 'No committed offsets',
  cols: [txt('topic', 'Topic'), num('partition', 'Partition'), num('committed_offset', 'Committed offset'),
    num('log_end_offset', 'Log end offset'), num('lag', 'Lag')],
};

const GROUPS = {
  attr: 'group', key: g => g.group_id, empty: 'No consumer groups',
  cols: [txt('group_id', 'Group', g => g.group_id, {click: g => toggleOpen('group:' + g.group_id)}), badge('state', 'State'),
    txt('protocol_type', 'Protocol type'), txt('protocol', 'Assignor'),
    num('members', 'Members', g => (g.members || []).length), num('lag', 'Total lag')],
  actions: [{action: 'details', label: 'Details', cls: 'toggle', run: g => toggleOpen('group:' + g.group_id)}],
  detail: {
    isOpen: g => state.open.has('group:' + g.group_id),
    build: () => h('div', {class: 'nested'}, h('h4', {text: 'Offsets'}), table(null, OFFSETS),
      h('h4', {text: 'Members'}), table(null, MEMBERS)),
    update(el, g) {
      const [offsets, members] = el.querySelectorAll('tbody');
      syncRows(offsets, g.offsets || [], OFFSETS);
      syncRows(members, g.members || [], MEMBERS);
    },
  },
};

VIEWS['kafka/groups'] = {
  build(root) { root.append(panel('Kafka consumer groups', table('groups-table', GROUPS))); },
  load: () => api('/kafka/groups'),
  render(groups) { syncRows(tbodyOf('groups-table'), groups || [], GROUPS); },
};

/* ---------- routing and refresh ---------- */

// "#/queues/%2F/orders" -> {view: 'queues', args: ['/', 'orders']}; parts are split before decoding.
function parseHash() {
  let parts = location.hash.replace(/^#\/?/, '').split('/').filter((p, i) => p !== '' || i > 0);
  try { parts = parts.map(decodeURIComponent); } catch (e) { parts = []; }
  if (parts[0] === 'kafka') parts = [`kafka/${parts[1] || 'topics'}`, ...parts.slice(2)];
  const view = VIEWS[parts[0]] ? parts[0] : 'overview';
  return {view, args: view === parts[0] ? parts.slice(1) : []};
}

function onRoute() {
  if (!state.auth) return;
  const route = parseHash(), before = state.route;
  state.route = route;
  for (const a of document.querySelectorAll('nav a[data-view]')) a.classList.toggle('active', a.dataset.view === route.view);
  if (state.builtView !== route.view) {
    const body = h('div', {id: 'view-body'});
    $('#view').replaceChildren(h('div', {id: 'forbidden', class: 'banner warn', hidden: true, text: `Access refused: ${FORBIDDEN}.`}), body);
    VIEWS[route.view].build(body);
    state.builtView = route.view;
    state.lastData = null;
    window.scrollTo(0, 0);
  }
  state.scrollToDetail = route.args.length > 0 && route.args.join('/') !== before.args.join('/');
  if (route.view === 'overview') VIEWS.overview.render();  // draw what we have before the poll returns
  refreshNow();
}

async function refresh() {
  const route = state.route;
  const [ov, data] = await Promise.allSettled([api('/overview'), VIEWS[route.view].load(route)]);
  if (!state.auth || route !== state.route) return;  // logged out or navigated meanwhile: stale
  const failures = [ov, data].filter(r => r.status === 'rejected').map(r => r.reason);
  if (failures.some(e => e.status === 401)) {
    logout('Your session has expired or your credentials were rejected; please log in again.');
    return;
  }
  if (ov.status === 'fulfilled') recordOverview(ov.value);
  const result = route.view === 'overview' ? ov : data;
  const forbidden = result.status === 'rejected' && result.reason.status === 403;
  $('#forbidden').hidden = !forbidden;
  $('#view-body').hidden = forbidden;
  if (result.status === 'fulfilled') {
    state.lastData = result.value;
    VIEWS[route.view].render(result.value, route);
    setText($('#last-updated'), `last updated ${clock(new Date())}`);
  }
  const other = failures.find(e => e.status !== 403);
  if (other) showError(`Refresh failed: ${other.message}. Showing the last data received.`, 'poll');
  else clearError('poll');
}

let timer = null, inflight = false, pending = false;

// Refreshes now, or right after the refresh in flight; then every REFRESH_MS. Never overlaps.
function refreshNow() {
  clearTimeout(timer);
  if (!state.auth) return;
  if (inflight) { pending = true; return; }
  inflight = true;
  refresh()
    .catch(e => showError(`Unexpected error: ${e.message}`, 'poll'))
    .finally(() => {
      inflight = false;
      if (!state.auth) return;
      if (pending) { pending = false; refreshNow(); } else timer = setTimeout(refreshNow, REFRESH_MS);
    });
}

/* ---------- login ---------- */

function showLogin(message) {
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#login-pass').value = '';
  $('#login-message').hidden = !message;
  $('#login-message').textContent = message || '';
  $('#login-user').focus();
}

function startSession(auth, me) {
  state.auth = auth;
  setText($('#whoami'), me?.name || '');
  $('#whoami').title = me?.tags ? `tags: ${[].concat(me.tags).join(', ') || 'none'}` : '';
  $('#login').hidden = true;
  $('#app').hidden = false;
  state.builtView = null;
  onRoute();
}

function logout(message) {
  state.auth = null;
  sessionStorage.removeItem(AUTH_KEY);
  clearTimeout(timer);
  Object.assign(state, {builtView: null, lastData: null, overview: null, history: []});
  $('#view').replaceChildren();
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  setText($('#node-info'), '');
  setText($('#last-updated'), '');
  clearError();
  showLogin(message);
}

async function submitLogin(ev) {
  ev.preventDefault();
  const auth = basicAuth($('#login-user').value, $('#login-pass').value);
  $('#login-submit').disabled = true;
  try {
    const me = await api('/whoami', {auth});
    sessionStorage.setItem(AUTH_KEY, auth);
    startSession(auth, me);
  } catch (e) {
    showLogin(e.status === 401 ? 'Login failed: wrong username or password.' : `Login failed: ${e.message}.`);
  } finally {
    $('#login-submit').disabled = false;
  }
}

function init() {
  $('#login-form').addEventListener('submit', submitLogin);
  $('#logout').addEventListener('click', ev => { ev.preventDefault(); logout(); });
  $('#error-dismiss').addEventListener('click', () => clearError());
  $('#publish-form').addEventListener('submit', submitPublish);
  $('#publish-cancel').addEventListener('click', () => $('#publish-dialog').close());
  $('#message-close').addEventListener('click', () => $('#message-dialog').close());
  window.addEventListener('hashchange', onRoute);
  window.addEventListener('resize', drawCharts);
  if (!location.hash) history.replaceState(null, '', '#/overview');
  const saved = sessionStorage.getItem(AUTH_KEY);
  if (!saved) { showLogin(); return; }
  // A saved session is checked once; a server that is merely down still opens the app (banner).
  api('/whoami', {auth: saved})
    .then(me => startSession(saved, me))
    .catch(e => (e.status === 401 ? logout('Your session has expired; please log in again.') : startSession(saved, null)));
}

init();
