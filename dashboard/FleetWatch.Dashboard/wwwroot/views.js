// FleetWatch views beyond the fleet heatmap: node, incidents, jobs, actions. Hash routing in this one page
// (#/fleet, #/node/NAME, #/incidents, #/jobs/ID, #/actions). Every view reads the controller API under /api/v1 with the
// page's session cookie and shows an empty state when an endpoint is absent or returns nothing. No secret is ever
// fetched: the API answers with what operators may see.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const fw = () => window.fleetwatch || null;
  const fmt = new Intl.NumberFormat();
  const timeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const when = (t) => (t ? timeFmt.format(new Date(t)) : '—');
  const REFRESH_MS = 5000;
  const SEVERITIES = ['critical', 'high', 'warning', 'info'];

  // ---------- small DOM helpers ----------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'data') for (const [dk, dv] of Object.entries(v)) { if (dv !== undefined && dv !== null) el.dataset[dk] = String(dv); }
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
    return el;
  }

  const nodeLink = (node, gpu) => h('a', { href: `#/node/${encodeURIComponent(node)}${gpu === null || gpu === undefined ? '' : `?gpu=${gpu}`}` },
    gpu === null || gpu === undefined ? node : `${node} · GPU ${gpu}`);
  const jobLink = (job) => h('a', { href: `#/jobs/${encodeURIComponent(job)}` }, job);
  const sevOf = (s) => String(s ?? 'info').toLowerCase();
  const words = (s) => String(s ?? '').replaceAll('_', ' ');
  const empty = (text, id) => h('p', { class: 'empty', id }, text);

  /** GET/POST/DELETE on the API: { ok, status, data }; never throws. */
  async function api(path, options = {}) {
    const init = { method: options.method || 'GET', credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (options.body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    try {
      const r = await fetch(`/api/v1${path}`, init);
      const text = await r.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch { data = null; }
      return { ok: r.ok, status: r.status, data };
    } catch (err) {
      return { ok: false, status: 0, data: { error: err.message } };
    }
  }
  const list = (r) => (r.ok && Array.isArray(r.data) ? r.data : []);
  const errorText = (r) => (r.data && (r.data.error || r.data.detail)) || (r.status === 404 ? 'not available on this controller (HTTP 404)' : `HTTP ${r.status}`);

  /** A table: columns [{ label, value(row) -> text|Node, cls }], rows, and per-row attributes. */
  function table(id, columns, rows, rowAttrs) {
    const head = h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.cls }, c.label)));
    const body = rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : null, columns.map((c) => {
      const v = c.value(row);
      return h('td', { class: c.cls }, v === null || v === undefined || v === '' ? '—' : v);
    })));
    return h('div', { class: 'table-wrap' }, h('table', { id, class: 'grid' }, h('thead', null, head), h('tbody', null, body)));
  }

  function panel(title, id, ...children) {
    const hid = `${id}-title`;
    return h('section', { class: 'panel', id, 'aria-labelledby': hid }, h('h3', { id: hid }, title), ...children);
  }

  function fill(id, ...children) {
    const el = $(id);
    if (el) el.replaceChildren(...children);
    return el;
  }

  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // ---------- sparkline (canvas, one line, gaps where no data) ----------
  function sparkline(values, label, unit) {
    const w = 120, hgt = 28, dpr = window.devicePixelRatio || 1;
    const c = h('canvas', { class: 'spark', width: Math.round(w * dpr), height: Math.round(hgt * dpr), role: 'img' });
    c.style.width = `${w}px`;
    c.style.height = `${hgt}px`;
    const xs = values.map((v) => (v === null || v === undefined ? NaN : v));
    const present = xs.filter((v) => !Number.isNaN(v));
    const last = present.length ? present[present.length - 1] : NaN;
    const lo = present.length ? Math.min(...present) : 0, hi = present.length ? Math.max(...present) : 1;
    c.setAttribute('aria-label', present.length
      ? `${label}: now ${fmtValue(last)} ${unit}, range ${fmtValue(lo)} to ${fmtValue(hi)} over 30 minutes`
      : `${label}: no data in the last 30 minutes`);
    c.dataset.points = String(present.length);
    const ctx = c.getContext('2d');
    ctx.scale(dpr, dpr);
    ctx.strokeStyle = cssVar('--accent');
    ctx.lineWidth = 1.25;
    const span = hi - lo || 1;
    ctx.beginPath();
    let pen = false;
    xs.forEach((v, k) => {
      if (Number.isNaN(v)) { pen = false; return; }
      const x = (k / Math.max(1, xs.length - 1)) * (w - 2) + 1, y = hgt - 2 - ((v - lo) / span) * (hgt - 4);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
    return h('span', { class: 'spark-cell' }, c, h('span', { class: 'spark-last' }, Number.isNaN(last) ? '—' : `${fmtValue(last)} ${unit}`));
  }
  const fmtValue = (v) => (Math.abs(v) >= 100 ? fmt.format(Math.round(v)) : fmt.format(Math.round(v * 100) / 100));

  // ---------- router ----------
  let timer = 0, current = null;
  const views = {};

  function parseHash() {
    const m = location.hash.match(/^#\/([a-z]+)(?:\/([^?]*))?(?:\?(.*))?$/);
    if (!m) return { name: 'fleet', arg: null, query: new URLSearchParams() };
    return { name: m[1], arg: m[2] ? decodeURIComponent(m[2]) : null, query: new URLSearchParams(m[3] || '') };
  }

  function route() {
    let { name, arg, query } = parseHash();
    if (!views[name] && name !== 'fleet') name = 'fleet';
    clearInterval(timer);
    timer = 0;
    document.body.dataset.view = name;
    for (const v of document.querySelectorAll('main > .view')) v.hidden = v.dataset.route !== name;
    for (const a of document.querySelectorAll('nav.tabs a')) {
      if (a.dataset.route === name || (name === 'node' && a.dataset.route === 'fleet')) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `FleetWatch · ${name}${arg ? ` ${arg}` : ''}`;
    current = name;
    if (name === 'fleet') {
      if (fw()) fw().refreshOverlays();
      return;
    }
    const v = views[name];
    const load = () => v.load(arg, query);
    v.open(arg, query);
    load();
    timer = setInterval(() => { if (!document.hidden && current === name) load(); }, REFRESH_MS);
    const heading = document.querySelector(`#view-${name} h2`);
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: false }); }
  }

  // ---------- node ----------
  const SERIES = [
    ['temperatureC', 'Temp', '°C'], ['powerW', 'Power', 'W'], ['utilizationPct', 'Util', '%'], ['smClockMHz', 'SM clock', 'MHz'],
    ['eccErrorsPerSecond', 'ECC', '/s'], ['nvlinkErrorsPerSecond', 'NVLink err', '/s'],
  ];

  views.node = {
    open(node) {
      fill('view-node',
        h('div', { class: 'view-head' }, h('h2', null, `Node ${node}`), h('p', { id: 'node-meta', class: 'meta' }), h('a', { href: '#/fleet' }, 'Back to the fleet')),
        h('section', { class: 'panel node-state', id: 'node-state', 'aria-labelledby': 'node-state-title', data: { state: 'unknown' } },
          h('h3', { id: 'node-state-title' }, 'Service state'),
          h('p', { id: 'node-cordon-text' }, 'Loading…'),
          h('form', { id: 'uncordon-form', class: 'inline', hidden: true, onsubmit: (e) => { e.preventDefault(); uncordon(node); } },
            h('label', null, 'Reason ', h('input', { id: 'uncordon-reason', placeholder: 'repaired, tested', spellcheck: 'false' })),
            h('button', { id: 'uncordon', type: 'submit' }, 'Uncordon')),
          h('output', { id: 'node-action-result', class: 'result', 'aria-live': 'polite' })),
        panel('GPUs · last 30 minutes', 'node-gpus-panel', h('div', { id: 'node-gpus' }, empty('Loading…'))),
        h('div', { class: 'two' },
          panel('InfiniBand ports', 'node-ib-panel', h('div', { id: 'node-ib' })),
          panel('Xid history', 'node-xid-panel', h('div', { id: 'node-xids' }))),
        h('div', { class: 'two' },
          panel('Incidents on this node', 'node-inc-panel', h('div', { id: 'node-incidents-wrap' })),
          panel('Actions on this node', 'node-act-panel', h('div', { id: 'node-actions' }))),
        panel('Conditions', 'node-cond-panel', h('div', { id: 'node-conditions' })));
      $('view-node').dataset.node = node;
      $('view-node').dataset.loaded = 'false';
    },

    async load(node, query) {
      const enc = encodeURIComponent(node);
      const [history, incidents, cordons, actions, conditions] = await Promise.all([
        api(`/nodes/${enc}`), api('/incidents?state=all&limit=500'), api('/cordons'), api(`/actions?node=${enc}&limit=50`), api(`/nodes/${enc}/conditions`)]);
      if (current !== 'node' || $('view-node').dataset.node !== node) return;
      renderNodeState(node, cordons);
      renderGpus(node, history, Number(query.get('gpu') ?? -1));
      renderIb(history);
      renderXids(history);
      renderNodeIncidents(node, incidents);
      renderNodeActions(actions);
      renderConditions(conditions);
      $('view-node').dataset.loaded = 'true';
    },
  };

  function renderNodeState(node, cordons) {
    const state = $('node-state');
    const text = $('node-cordon-text');
    if (!cordons.ok) {
      state.dataset.state = 'unknown';
      text.textContent = `Cordon state unknown: the remediation API is ${errorText(cordons)}.`;
      $('uncordon-form').hidden = true;
      return;
    }
    const c = list(cordons).find((x) => x.node === node);
    state.dataset.state = c ? 'cordoned' : 'in-service';
    const back = c && c.returnToService;
    text.textContent = c
      ? `Cordoned since ${when(c.at)} by ${c.operator ?? '—'}: ${c.reason ?? ''}${c.incidentId ? ` (incident ${c.incidentId})` : ''}.`
        + (back ? ` Return to service: ${back.state.replaceAll('_', ' ')}${back.reason ? ` (${back.reason})` : ''}.` : '')
      : 'In service (not cordoned).';
    $('uncordon-form').hidden = !c;
  }

  async function uncordon(node) {
    const out = $('node-action-result');
    const reason = $('uncordon-reason').value.trim();
    const r = await api(`/nodes/${encodeURIComponent(node)}/uncordon`, { method: 'POST', body: reason ? { reason } : {} });
    out.dataset.ok = String(r.ok);
    out.textContent = r.ok ? `Uncordoned ${node}; the action is in the audit log.` : `Not uncordoned: ${errorText(r)}`;
    views.node.load(node, new URLSearchParams());
    if (fw()) fw().refreshOverlays();
  }

  function renderGpus(node, history, focusGpu) {
    const live = fw() ? fw().gpusOf(node) : [];
    const healthOf = new Map(live.map((g) => [g.gpu, g.health]));
    if (!history.ok) {
      const rows = live.map((g) => ({ index: g.gpu, uuid: g.uuid, series: {} }));
      fill('node-gpus', empty(history.status === 404 ? 'No history for this node yet (the controller has not received a sample in the last 30 minutes).' : `History unavailable: ${errorText(history)}.`),
        rows.length ? gpuTable(rows, healthOf, focusGpu) : '');
      return;
    }
    const d = history.data;
    $('node-meta').textContent = [d.rack ? `rack ${d.rack}` : null, d.lastSample ? `last sample ${when(d.lastSample)}` : null,
      `${d.gpus.length} GPUs`, `${fmt.format(d.bucketSeconds)} s per point`].filter(Boolean).join(' · ');
    fill('node-gpus', d.gpus.length ? gpuTable(d.gpus, healthOf, focusGpu) : empty('The node reported no GPUs.'));
  }

  function gpuTable(gpus, healthOf, focusGpu) {
    const columns = [
      { label: 'GPU', value: (g) => h('span', { class: 'gpu-id' }, h('strong', null, String(g.index)), h('span', { class: 'uuid' }, g.uuid || ''), h('span', { class: 'uuid' }, g.pciBusId || '')) },
      { label: 'Health', value: (g) => h('span', { class: 'pill', data: { health: healthOf.get(g.index) ?? 'unknown' } }, g.lost ? 'lost' : healthOf.get(g.index) ?? 'unknown') },
      ...SERIES.map(([key, label, unit]) => ({ label, cls: 'spark-col', value: (g) => sparkline((g.series && g.series[key]) || [], label, unit) })),
    ];
    return table('node-gpu-table', columns, gpus, (g) => ({ data: { gpu: g.index, health: healthOf.get(g.index) ?? 'unknown' }, class: g.index === focusGpu ? 'focus' : null }));
  }

  function renderIb(history) {
    const ports = history.ok ? history.data.ibPorts : [];
    fill('node-ib', ports.length
      ? table('node-ib-table', [
        { label: 'Port', value: (p) => `${p.device}/${p.port}` },
        { label: 'State', value: (p) => h('span', { class: 'pill', data: { health: p.state === 'ACTIVE' ? 'healthy' : 'critical' } }, p.state ?? '—') },
        { label: 'Physical', value: (p) => p.physState },
        { label: 'Rate', value: (p) => (p.rateGbps ? `${fmt.format(p.rateGbps)} Gb/s` : null) },
        { label: 'Errors', cls: 'spark-col', value: (p) => sparkline(p.errorsPerSecond, 'IB errors', '/s') },
      ], ports, (p) => ({ data: { port: `${p.device}/${p.port}`, state: p.state } }))
      : empty('No InfiniBand ports reported.'));
  }

  function renderXids(history) {
    const xids = history.ok ? history.data.xids : [];
    fill('node-xids', xids.length
      ? table('node-xid-table', [
        { label: 'Time', value: (x) => when(x.time) },
        { label: 'Xid', value: (x) => (x.xid === null ? x.kind : `${x.kind === 'sxid' ? 'SXid' : 'Xid'} ${x.xid}`) },
        { label: 'GPU', value: (x) => (x.gpuIndex ?? x.pciBusId ?? '—') },
        { label: 'Message', value: (x) => x.message },
      ], xids, (x) => ({ data: { xid: x.xid ?? '' } }))
      : empty('No Xid in the controller\'s memory for this node.'));
  }

  /** Incidents from the incident API, or the live feed's when that API is absent. */
  function incidentsFrom(r) {
    if (r.ok && Array.isArray(r.data)) return { items: r.data.map(normalizeIncident), live: false };
    const f = fw();
    return { items: f ? [...f.incidents, ...f.resolved].map(normalizeIncident) : [], live: true };
  }

  function normalizeIncident(x) {
    return { ...x, gpu: x.gpuIndex ?? x.gpu ?? null, severity: sevOf(x.severity), findings: x.findings || [], notes: x.notes || [] };
  }

  function renderNodeIncidents(node, r) {
    const { items, live } = incidentsFrom(r);
    const mine = items.filter((x) => x.node === node);
    const ul = h('ul', { id: 'node-incidents', class: 'incidents' }, mine.map((x) => h('li', {
      data: { id: x.id, severity: x.severity, state: x.resolvedAt ? 'resolved' : 'open', category: x.category },
    }, h('span', { class: 'sev' }, x.severity),
    h('a', { class: 'what', href: `#/incidents?id=${encodeURIComponent(x.id)}` }, words(x.category)),
    h('span', { class: 'where' }, `${x.gpu === null ? 'whole node' : `GPU ${x.gpu}`} · opened ${when(x.openedAt)}${x.resolvedAt ? ` · resolved ${when(x.resolvedAt)}` : ''}`))));
    fill('node-incidents-wrap', mine.length ? ul : empty('No incident touched this node recently.'), live ? h('p', { class: 'note' }, 'From the live feed (the incident API is not available).') : '');
  }

  function renderNodeActions(r) {
    const rows = list(r);
    fill('node-actions', rows.length ? actionTable('node-action-table', rows) : empty(r.ok ? 'No action touched this node.' : `Audit log unavailable: ${errorText(r)}.`));
  }

  function renderConditions(r) {
    const rows = list(r);
    // True and Unknown first (what needs a look); the False ones are the bulk of a healthy node and come after.
    const rank = (c) => ({ True: 0, Unknown: 1 }[String(c.status)] ?? 2);
    const sorted = [...rows].sort((a, b) => rank(a) - rank(b));
    const raised = rows.filter((c) => rank(c) < 2).length;
    fill('node-conditions', rows.length
      ? h('div', null, h('p', { class: 'meta', id: 'node-condition-count', data: { raised } }, `${fmt.format(raised)} of ${fmt.format(rows.length)} conditions true or unknown`),
        table('node-condition-table', [
          { label: 'Condition', value: (c) => c.type ?? c.name ?? c.rule },
          { label: 'GPU', value: (c) => (c.gpu ?? c.gpuIndex ?? 'node') },
          { label: 'Status', value: (c) => h('span', { class: 'pill', data: { health: { True: 'critical', Unknown: 'unknown', False: 'healthy' }[String(c.status)] } }, String(c.status ?? '')) },
          { label: 'Detail', value: (c) => c.detail ?? c.reason ?? c.message },
          { label: 'Since', value: (c) => when(c.since ?? c.lastTransition ?? c.lastTransitionTime) },
        ], sorted.slice(0, 200), (c) => ({ data: { rule: c.rule ?? c.type ?? '', status: c.status ?? '' } })))
      : empty(r.ok ? 'No condition reported.' : `Conditions unavailable: ${errorText(r)}.`));
  }

  function actionTable(id, rows) {
    return table(id, [
      { label: 'Time', value: (a) => when(a.at ?? a.time) },
      { label: 'Kind', value: (a) => words(a.kind) },
      { label: 'Node', value: (a) => (a.node ? nodeLink(a.node) : null) },
      { label: 'Job', value: (a) => ((a.jobId ?? a.job) ? jobLink(a.jobId ?? a.job) : null) },
      { label: 'Incident', value: (a) => ((a.incidentId ?? a.incident) ? h('a', { href: `#/incidents?id=${encodeURIComponent(a.incidentId ?? a.incident)}` }, a.incidentId ?? a.incident) : null) },
      { label: 'Reason', value: (a) => a.reason },
      { label: 'Operator', value: (a) => a.operator },
      { label: 'State', value: (a) => h('span', { class: 'pill', data: { state: a.state } }, words(a.state)) },
    ], rows, (a) => ({ data: { kind: a.kind, node: a.node ?? '', operator: a.operator ?? '', state: a.state ?? '' } }));
  }

  // ---------- incidents ----------
  let incidentState = 'open', selected = null, incidentCache = [], tableSignature = '', detailSignature = '';

  views.incidents = {
    open(_, query) {
      selected = query.get('id') || selected;
      if (query.get('id')) incidentState = 'all';
      tableSignature = '';
      detailSignature = '';
      fill('view-incidents',
        h('div', { class: 'view-head' }, h('h2', null, 'Incidents'),
          h('label', { class: 'mode' }, 'Show ', h('select', { id: 'inc-state', onchange: (e) => { incidentState = e.target.value; views.incidents.load(); } },
            ['open', 'resolved', 'all'].map((s) => h('option', { value: s, selected: s === incidentState }, s)))),
          h('p', { id: 'inc-source', class: 'meta' })),
        panel('Timeline', 'inc-timeline-panel', h('div', { id: 'inc-timeline', class: 'timeline', role: 'img' })),
        h('div', { class: 'two wide-left' },
          panel('Incidents', 'inc-table-panel', h('div', { id: 'inc-table' }, empty('Loading…'))),
          h('section', { class: 'panel', id: 'incident-detail', 'aria-live': 'polite', 'aria-labelledby': 'incident-detail-title' },
            h('h3', { id: 'incident-detail-title' }, 'Details'), empty('Select an incident (Enter on a row).'))),
        panel('Silences', 'silence-panel', h('div', { id: 'silences' })));
    },

    async load(_, __, force) {
      const [r, silences] = await Promise.all([api(`/incidents?state=${incidentState}&limit=500`), api('/silences')]);
      if (current !== 'incidents') return;
      const { items, live } = incidentsFrom(r);
      incidentCache = items.filter((x) => incidentState === 'all' || (incidentState === 'open' ? !x.resolvedAt : !!x.resolvedAt));
      $('inc-source').textContent = live
        ? 'The incident API is not available: showing the live feed (read-only).'
        : `${fmt.format(incidentCache.length)} incidents`;
      $('view-incidents').dataset.api = String(!live);
      renderTimeline(incidentCache);
      // Rebuilt only when the incidents changed: a quiet refresh keeps the rows, their focus and hover as they are.
      const signature = JSON.stringify([incidentState, selected, incidentCache]);
      if (force || signature !== tableSignature) {
        tableSignature = signature;
        const focusedRow = document.activeElement && document.activeElement.closest && document.activeElement.closest('#incident-table tr');
        renderIncidentTable(incidentCache);
        if (focusedRow) document.querySelector(`#incident-table tr[data-id="${CSS.escape(focusedRow.dataset.id)}"]`)?.focus();
      }
      renderSilences(silences);
      // A refresh never rebuilds the details under an operator who is typing in them.
      if (selected && (force || !$('incident-detail').contains(document.activeElement))) await renderDetail(selected, live);
      $('view-incidents').dataset.loaded = 'true';
    },
  };

  function renderTimeline(items) {
    const now = Date.now();
    const shown = items.slice(0, 60);
    // The axis spans the shown incidents (at least 15 minutes), with a little room before the first.
    const first = Math.min(now, ...shown.map((x) => Date.parse(x.openedAt)));
    const span = Math.max(15 * 60e3, (now - first) * 1.05);
    const start = now - span;
    const rows = shown.map((x) => {
      const a = Date.parse(x.openedAt), b = x.resolvedAt ? Date.parse(x.resolvedAt) : now;
      const bar = h('a', {
        class: 'bar', href: `#/incidents?id=${encodeURIComponent(x.id)}`, data: { severity: x.severity, id: x.id },
        title: `${x.severity} ${words(x.category)} on ${x.node}${x.gpu === null ? '' : ` GPU ${x.gpu}`}: ${when(x.openedAt)} to ${x.resolvedAt ? when(x.resolvedAt) : 'now'}`,
      });
      bar.style.left = `${((a - start) / span) * 100}%`;
      bar.style.width = `${Math.max(0.6, ((b - a) / span) * 100)}%`;
      return h('div', { class: 'tl-row' }, h('span', { class: 'tl-label' }, `${x.node}${x.gpu === null ? '' : `/${x.gpu}`}`), h('div', { class: 'tl-track' }, bar));
    });
    const el = $('inc-timeline');
    el.setAttribute('aria-label', `Timeline of ${shown.length} incidents from ${when(start)} to now`);
    el.replaceChildren(...(rows.length ? [h('div', { class: 'tl-axis' }, h('span', null, when(start)), h('span', null, 'now')), ...rows] : [empty('Nothing in this range.')]));
  }

  function renderIncidentTable(items) {
    const select = (id) => { selected = id; renderDetail(id, $('view-incidents').dataset.api !== 'true'); };
    fill('inc-table', items.length ? table('incident-table', [
      { label: 'Severity', value: (x) => h('span', { class: 'sev' }, x.severity) },
      { label: 'Category', value: (x) => words(x.category) },
      { label: 'Where', value: (x) => nodeLink(x.node, x.gpu) },
      { label: 'Opened', value: (x) => when(x.openedAt) },
      { label: 'Resolved', value: (x) => (x.resolvedAt ? when(x.resolvedAt) : 'open') },
      { label: 'Acknowledged', value: (x) => (x.acknowledgedBy ? `${x.acknowledgedBy}` : '') },
      { label: 'Silenced', value: (x) => x.silencedBy },
    ], items, (x) => ({
      tabindex: 0,
      class: x.id === selected ? 'selected' : null,
      'aria-selected': String(x.id === selected),
      data: { id: x.id, severity: x.severity, state: x.resolvedAt ? 'resolved' : 'open', acked: String(!!x.acknowledgedBy), silenced: String(!!x.silencedBy), node: x.node, gpu: x.gpu ?? '' },
      onclick: (e) => { if (!e.target.closest('a')) select(x.id); },
      onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(x.id); } },
    })) : empty(incidentState === 'open' ? 'No open incidents.' : 'No incidents.'));
  }

  async function renderDetail(id, live) {
    let inc = incidentCache.find((x) => x.id === id);
    const [full, deliveries] = live ? [null, { ok: false, status: 404 }] : await Promise.all([api(`/incidents/${encodeURIComponent(id)}`), api(`/alerts/deliveries?incident=${encodeURIComponent(id)}`)]);
    if (full && full.ok && full.data) inc = normalizeIncident(full.data);
    const box = $('incident-detail');
    const signature = JSON.stringify([inc, full && full.data, deliveries && deliveries.data, live]);
    if (signature === detailSignature && box.dataset.id === id) return; // nothing new: keep what the operator sees
    detailSignature = signature;
    if (!inc) { box.replaceChildren(h('h3', { id: 'incident-detail-title' }, 'Details'), empty(`Incident ${id} is not in this list.`)); return; }
    for (const tr of document.querySelectorAll('#incident-table tbody tr')) {
      tr.classList.toggle('selected', tr.dataset.id === id);
      tr.setAttribute('aria-selected', String(tr.dataset.id === id));
    }
    const open = !inc.resolvedAt;
    box.dataset.id = inc.id;
    box.dataset.acked = String(!!inc.acknowledgedBy);
    box.dataset.silenced = String(!!inc.silencedBy);
    const dl = h('dl', { class: 'facts' },
      ...[['Severity', inc.severity], ['Category', words(inc.category)], ['Action', words(inc.action)], ['Where', nodeLink(inc.node, inc.gpu)],
        ['Opened', when(inc.openedAt)], ['Resolved', inc.resolvedAt ? when(inc.resolvedAt) : 'open'],
        ['Acknowledged', inc.acknowledgedBy ? `${inc.acknowledgedBy} at ${when(inc.acknowledgedAt)}` : 'no'],
        ['Silenced by', inc.silencedBy || 'no']].flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
    const findings = inc.findings.length ? table('finding-table', [
      { label: 'Rule', value: (f) => f.rule },
      { label: 'Severity', value: (f) => sevOf(f.severity) },
      { label: 'Evidence', value: (f) => f.message },
      { label: 'GPU', value: (f) => f.gpuIndex ?? f.gpu },
      { label: 'First', value: (f) => when(f.firstSeen) },
      { label: 'Last', value: (f) => when(f.lastSeen) },
      { label: 'Count', value: (f) => f.count },
    ], inc.findings) : empty(inc.summary ? `Summary: ${inc.summary}` : 'No findings listed.');
    const sent = list(deliveries);
    const deliveriesEl = sent.length ? table('delivery-table', [
      { label: 'Receiver', value: (d) => `${d.receiver} (${d.kind})` },
      { label: 'State', value: (d) => h('span', { class: 'pill', data: { state: d.state } }, words(d.state)) },
      { label: 'Attempts', value: (d) => d.attempts },
      { label: 'Last status', value: (d) => d.lastStatus ?? d.lastError },
      { label: 'Created', value: (d) => when(d.createdAt) },
      { label: 'Delivered', value: (d) => when(d.deliveredAt) },
    ], sent, (d) => ({ data: { state: d.state, receiver: d.receiver } })) : empty(deliveries.ok ? 'No notification sent for this incident.' : `Deliveries unavailable: ${errorText(deliveries)}.`);
    const notes = h('ul', { id: 'incident-notes', class: 'notes' }, inc.notes.map((n) => h('li', null, h('span', { class: 'meta' }, `${n.by} · ${when(n.at)}`), ' ', n.text)));
    const actions = live ? h('p', { class: 'note' }, 'Acknowledge, silence and notes need the incident API.') : h('div', { class: 'incident-actions' },
      h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); ack(inc); } },
        h('label', null, 'Note ', h('input', { id: 'ack-note', placeholder: 'optional', spellcheck: 'false' })),
        h('button', { id: 'ack-btn', type: 'submit', disabled: !!inc.acknowledgedBy || !open }, inc.acknowledgedBy ? 'Acknowledged' : 'Acknowledge')),
      h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); silence(inc); } },
        h('label', null, 'Silence ', h('select', { id: 'silence-scope' },
          h('option', { value: 'gpu' }, inc.gpu === null ? 'this node' : `${inc.node} GPU ${inc.gpu}`), h('option', { value: 'node' }, `all of ${inc.node}`))),
        h('label', null, 'for ', h('select', { id: 'silence-duration' }, [['1', '1 hour'], ['4', '4 hours'], ['24', '1 day'], ['168', '1 week']].map(([v, t]) => h('option', { value: v }, t)))),
        h('label', null, 'Comment ', h('input', { id: 'silence-comment', placeholder: 'why', spellcheck: 'false' })),
        h('button', { id: 'silence-btn', type: 'submit' }, 'Silence')),
      h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); note(inc); } },
        h('label', null, 'Add a note ', h('input', { id: 'note-text', required: true, spellcheck: 'true' })),
        h('button', { id: 'note-btn', type: 'submit' }, 'Add note')),
      h('output', { id: 'incident-result', class: 'result', 'aria-live': 'polite' }));
    box.replaceChildren(h('h3', { id: 'incident-detail-title' }, `Incident ${inc.id}`), dl, actions,
      h('h4', null, 'Findings and evidence'), findings, h('h4', null, 'Notifications'), deliveriesEl, h('h4', null, 'Notes'),
      inc.notes.length ? notes : empty('No notes.'));
  }

  function report(r, ok) {
    const out = $('incident-result');
    if (!out) return;
    out.dataset.ok = String(r.ok);
    out.textContent = r.ok ? ok : `Refused: ${errorText(r)}`;
  }

  async function ack(inc) {
    const noteText = $('ack-note').value.trim();
    const r = await api(`/incidents/${encodeURIComponent(inc.id)}/ack`, { method: 'POST', body: noteText ? { note: noteText } : {} });
    await views.incidents.load(null, null, true);
    report(r, `Acknowledged ${inc.id}.`);
  }

  async function silence(inc) {
    const hours = Number($('silence-duration').value);
    const matchers = [{ name: 'node', value: inc.node }];
    if ($('silence-scope').value === 'gpu' && inc.gpu !== null) matchers.push({ name: 'gpu', value: String(inc.gpu) });
    const endsAt = new Date(Date.now() + hours * 3600e3).toISOString();
    const r = await api('/silences', { method: 'POST', body: { matchers, endsAt, comment: $('silence-comment').value.trim() || `silenced from incident ${inc.id}` } });
    await views.incidents.load(null, null, true);
    report(r, `Silenced until ${when(endsAt)}.`);
  }

  async function note(inc) {
    const text = $('note-text').value.trim();
    if (!text) return;
    const r = await api(`/incidents/${encodeURIComponent(inc.id)}/notes`, { method: 'POST', body: { text } });
    await views.incidents.load(null, null, true);
    report(r, 'Note added.');
  }

  function renderSilences(r) {
    const rows = list(r);
    const matcherText = (m) => (Array.isArray(m) ? m.map((x) => `${x.name}${x.isEqual === false ? '!' : ''}${x.isRegex ? '=~' : '='}${x.value}`).join(', ')
      : Object.entries(m || {}).map(([k, v]) => `${k}=${v}`).join(', '));
    fill('silences', rows.length ? table('silence-table', [
      { label: 'Matchers', value: (s) => matcherText(s.matchers) },
      { label: 'Until', value: (s) => when(s.endsAt) },
      { label: 'By', value: (s) => s.createdBy },
      { label: 'Comment', value: (s) => s.comment },
      { label: '', value: (s) => h('button', { class: 'secondary', type: 'button', onclick: async () => { await api(`/silences/${encodeURIComponent(s.id)}`, { method: 'DELETE' }); views.incidents.load(null, null, true); } }, 'Expire') },
    ], rows, (s) => ({ data: { id: s.id } })) : empty(r.ok ? 'No active silence.' : `Silences unavailable: ${errorText(r)}.`));
  }

  // ---------- jobs ----------
  views.jobs = {
    open(job) {
      fill('view-jobs',
        h('div', { class: 'view-head' }, h('h2', null, job ? `Job ${job}` : 'Jobs'), h('a', { href: '#/jobs' }, job ? 'All jobs' : '')),
        panel('Jobs', 'job-list-panel', h('div', { id: 'job-list' }, empty('Loading…'))),
        job ? h('div', { id: 'job-detail', data: { job } },
          panel('Straggler scores · rank × time (1 keeps pace, 0.5 takes twice as long)', 'job-heat-panel',
            h('p', { id: 'job-summary', class: 'meta' }),
            h('div', { class: 'job-heat-wrap' }, h('canvas', { id: 'job-heatmap', tabindex: 0, role: 'img', 'aria-label': 'Straggler scores by rank and time', 'aria-describedby': 'job-tip' }),
              h('div', { id: 'job-tip', class: 'tooltip', role: 'tooltip', 'aria-live': 'polite', hidden: true })),
            h('ul', { id: 'job-legend', class: 'legend' })),
          h('div', { class: 'two' },
            panel('Flagged ranks', 'job-flag-panel', h('div', { id: 'job-flagged' })),
            panel('Hang state', 'job-hang-panel', h('div', { id: 'job-hang' }))),
          panel('Restore cycles', 'job-restore-panel', h('div', { id: 'job-restores' })),
          panel('Expert placement', 'job-expert-panel', h('div', { id: 'job-experts' }))) : '');
    },

    async load(job) {
      const [jobs, scores] = await Promise.all([api('/jobs'), api('/stragglers/scores')]);
      if (current !== 'jobs') return;
      renderJobList(jobs, scores);
      if (job) {
        const enc = encodeURIComponent(job);
        const [s, detail] = await Promise.all([api(`/jobs/${enc}/stragglers`), api(`/jobs/${enc}`)]);
        if (current !== 'jobs' || !$('job-detail') || $('job-detail').dataset.job !== job) return;
        renderStragglers(s);
        renderRestores(detail);
      }
      $('view-jobs').dataset.loaded = 'true';
    },
  };

  function renderJobList(jobs, scores) {
    const byId = new Map();
    for (const j of list(jobs)) byId.set(j.jobId ?? j.id, { id: j.jobId ?? j.id, ranks: (j.ranks || []).length, lastStep: j.lastStep, running: j.finishedAt ? 'finished' : 'running', halted: j.haltedReason });
    const worst = new Map(), ranksSeen = new Map();
    for (const s of list(scores)) {
      if (!byId.has(s.job)) byId.set(s.job, { id: s.job, ranks: null, lastStep: null, running: 'reporting steps', halted: null });
      worst.set(s.job, Math.min(worst.get(s.job) ?? 1, s.score));
      ranksSeen.set(s.job, (ranksSeen.get(s.job) ?? 0) + 1);
    }
    for (const j of byId.values()) if (j.ranks === null && ranksSeen.has(j.id)) j.ranks = ranksSeen.get(j.id);
    const rows = [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
    fill('job-list', rows.length ? table('job-table', [
      { label: 'Job', value: (j) => jobLink(j.id) },
      { label: 'Ranks', value: (j) => (j.ranks === null ? '—' : fmt.format(j.ranks)) },
      { label: 'State', value: (j) => (j.halted ? `halted: ${j.halted}` : j.running) },
      { label: 'Last step', value: (j) => j.lastStep },
      { label: 'Slowest rank score', value: (j) => (worst.has(j.id) ? worst.get(j.id).toFixed(2) : '') },
    ], rows, (j) => ({ data: { job: j.id } })) : empty(jobs.ok || scores.ok ? 'No job registered or reporting steps.' : `Job APIs unavailable: ${errorText(jobs)}.`));
  }

  function scoreColour(score, stops) {
    const t = Math.max(0, Math.min(1, (1 - score) / 0.5)) * 4, a = Math.min(3, Math.floor(t)), f = t - a;
    return stops[a].map((c, j) => Math.round(c + (stops[a + 1][j] - c) * f));
  }

  function parseRgb(text) {
    const s = text.trim();
    if (s.startsWith('#')) {
      const x = s.length === 4 ? s.slice(1).split('').map((c) => c + c).join('') : s.slice(1, 7);
      return [0, 2, 4].map((k) => parseInt(x.slice(k, k + 2), 16));
    }
    return (s.match(/\d+/g) || [0, 0, 0]).slice(0, 3).map(Number);
  }

  function renderStragglers(r) {
    const canvas = $('job-heatmap');
    const d = r.ok ? r.data : null;
    const ranks = d ? d.ranks : [], scores = d ? d.scores : [];
    const det = d && d.detector;
    $('job-summary').textContent = d
      ? [`${fmt.format(ranks.length)} ranks`, det ? `last step ${fmt.format(det.lastStep)}` : null, det && det.medianStepMs ? `median step ${fmt.format(Math.round(det.medianStepMs))} ms` : null,
        `${fmt.format(d.bucketSeconds)} s per column, last 30 minutes`].filter(Boolean).join(' · ')
      : `No straggler data: ${errorText(r)}.`;
    canvas.dataset.ranks = String(ranks.length);
    // One pixel per (rank row, bucket) in an ImageData scaled up without smoothing; with more ranks than rows, a row
    // shows the slowest of its ranks, so a straggler never disappears in the downsampling.
    const cols = scores.length ? scores[0].length : 180;
    const rows = Math.max(1, Math.min(ranks.length, 400));
    const stops = [0, 1, 2, 3, 4].map((k) => parseRgb(cssVar(`--scale-${k}`)));
    const none = parseRgb(cssVar('--canvas-bg'));
    const img = new ImageData(cols, rows);
    const worst = new Float32Array(rows * cols).fill(NaN);
    scores.forEach((line, rk) => {
      const row = Math.floor((rk * rows) / Math.max(1, ranks.length));
      line.forEach((v, k) => {
        if (v === null) return;
        const i = row * cols + k;
        if (Number.isNaN(worst[i]) || v < worst[i]) worst[i] = v;
      });
    });
    let flaggedCells = 0;
    for (let i = 0; i < worst.length; i++) {
      const rgb = Number.isNaN(worst[i]) ? none : scoreColour(worst[i], stops);
      if (!Number.isNaN(worst[i]) && worst[i] < 0.8) flaggedCells++;
      img.data.set([rgb[0], rgb[1], rgb[2], 255], i * 4);
    }
    canvas.dataset.slowCells = String(flaggedCells);
    const wrap = canvas.parentElement;
    const width = Math.max(300, wrap.clientWidth || 800), height = Math.max(60, Math.min(480, rows * 6));
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const off = document.createElement('canvas');
    off.width = cols;
    off.height = rows;
    off.getContext('2d').putImageData(img, 0, 0);
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    canvas.setAttribute('aria-label', `Straggler scores of ${ranks.length} ranks over the last 30 minutes; ${flaggedCells} cells below 0.8. The flagged ranks are listed below.`);
    // Hover, or arrow keys on the focused canvas, tell the rank, its GPU, the time and the score of a cell.
    const show = (row, k, x, y) => {
      const tip = $('job-tip');
      const rk = Math.min(ranks.length - 1, Math.floor((row * ranks.length) / rows));
      if (!ranks.length || rk < 0 || k < 0 || k >= cols) { tip.hidden = true; return; }
      const p = ranks[rk], v = scores[rk][k];
      const at = d.start ? new Date(Date.parse(d.start) + k * d.bucketSeconds * 1000) : null;
      tip.textContent = `rank ${p.rank} · ${p.node} GPU ${p.gpu} · ${at ? when(at) : ''} · score ${v === null ? 'no report' : v.toFixed(2)}`;
      tip.hidden = false;
      tip.style.left = `${Math.max(0, Math.min(x + 12, width - 260))}px`;
      tip.style.top = `${y + 12}px`;
    };
    const cursor = { row: 0, k: cols - 1 };
    canvas.onmousemove = (e) => {
      const rect = canvas.getBoundingClientRect();
      const k = Math.floor(((e.clientX - rect.left) / rect.width) * cols), row = Math.floor(((e.clientY - rect.top) / rect.height) * rows);
      show(row, k, e.clientX - rect.left, e.clientY - rect.top);
    };
    canvas.onkeydown = (e) => {
      const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1], Home: [0, -cols], End: [0, cols] };
      if (e.key === 'Escape') { $('job-tip').hidden = true; return; }
      if (!moves[e.key]) return;
      e.preventDefault();
      cursor.row = Math.max(0, Math.min(rows - 1, cursor.row + moves[e.key][0]));
      cursor.k = Math.max(0, Math.min(cols - 1, cursor.k + moves[e.key][1]));
      show(cursor.row, cursor.k, (cursor.k / cols) * width, (cursor.row / rows) * height);
    };
    canvas.onblur = () => { $('job-tip').hidden = true; };
    canvas.onmouseleave = () => { $('job-tip').hidden = true; };
    fill('job-legend', ...[1, 0.875, 0.75, 0.625, 0.5].map((s) => {
      const i = h('i');
      i.style.background = `rgb(${scoreColour(s, stops).join(',')})`;
      return h('li', null, i, s === 0.5 ? '0.50 or less' : s.toFixed(2));
    }));
    const flagged = det ? det.flagged : [];
    fill('job-flagged', flagged.length ? table('job-flag-table', [
      { label: 'Rank', value: (f) => String(f.rank) },
      { label: 'GPU', value: (f) => nodeLink(f.node, f.gpu) },
      { label: 'Score', value: (f) => f.score.toFixed(2) },
      { label: 'Cause', value: (f) => f.cause },
      { label: 'Evidence', value: (f) => (f.evidence || []).join('; ') },
      { label: 'Since', value: (f) => when(f.since) },
      { label: 'Escalated', value: (f) => (f.escalated ? 'yes' : 'no') },
    ], flagged, (f) => ({ data: { rank: f.rank, cause: f.cause } })) : empty(det ? 'No rank is flagged.' : 'The live straggler detector holds nothing for this job.'));
    const hang = $('job-hang');
    hang.dataset.hung = String(!!(det && det.hung));
    hang.replaceChildren(det
      ? h('p', null, det.hung ? `Hung: no rank finished a step since step ${fmt.format(det.lastStep)}. Suspects: ${det.hangTargets.join(', ') || 'none named'}.` : 'Making progress.')
      : empty('Unknown (no step reports).'));
    const moves = d ? d.rebalances || [] : [];
    fill('job-experts', moves.length ? table('job-expert-table', [
      { label: 'Time', value: (a) => when(a.at) },
      { label: 'Trigger', value: (a) => a.trigger },
      { label: 'Reason', value: (a) => a.reason },
      { label: 'Imbalance before', value: (a) => (a.imbalanceBefore === null ? 'lost an expert' : a.imbalanceBefore.toFixed(3)) },
      { label: 'After', value: (a) => a.imbalanceAfter.toFixed(3) },
      { label: 'Worst layer after', value: (a) => a.maxImbalanceAfter.toFixed(3) },
      { label: 'Weights moved', value: (a) => fmt.format(a.weightMoves) },
      { label: 'GPUs', value: (a) => fmt.format(a.gpus) },
    ], moves) : empty('No expert re-placement for this job (only MoE jobs that report expert load have one).'));
  }

  function renderRestores(r) {
    const d = r.ok ? r.data : null;
    const cycles = d ? d.cycles || d.restoreCycles || d.restores || [] : [];
    const chosen = d && d.selected ? h('p', { class: 'meta', id: 'job-next-checkpoint' },
      `A restore now would use the checkpoint of step ${fmt.format(d.selected.step)} (${d.selected.uri}, saved ${when(d.selected.savedAt)}).`) : '';
    fill('job-restores', chosen, cycles.length ? table('job-restore-table', [
      { label: 'Cycle', value: (c) => c.cycle },
      { label: 'Kind', value: (c) => c.kind },
      { label: 'State', value: (c) => h('span', { class: 'pill', data: { state: c.state } }, c.state) },
      { label: 'Checkpoint', value: (c) => `step ${c.checkpointStep} · ${c.checkpointUri}` },
      { label: 'Excluded', value: (c) => (c.excluded || []).join(', ') },
      { label: 'Spares', value: (c) => (c.spares || []).join(', ') },
      { label: 'Started', value: (c) => when(c.startedAt) },
      { label: 'Healthy', value: (c) => when(c.healthyAt) },
    ], cycles, (c) => ({ data: { cycle: c.cycle, state: c.state } })) : empty(d ? 'No restore so far.' : `Not a registered job (${errorText(r)}).`));
  }

  // ---------- actions ----------
  views.actions = {
    open(_, query) {
      fill('view-actions',
        h('div', { class: 'view-head' }, h('h2', null, 'Actions'), h('p', { class: 'meta' }, 'The audit log: cordons, restores, rebalances and operator actions, with reasons.')),
        h('form', { class: 'tools', id: 'action-filter', onsubmit: (e) => { e.preventDefault(); views.actions.load(); } },
          h('label', null, 'Node ', h('input', { id: 'action-node', value: query.get('node') || '', spellcheck: 'false' })),
          h('label', null, 'Job ', h('input', { id: 'action-job', value: query.get('job') || '', spellcheck: 'false' })),
          h('button', { type: 'submit' }, 'Filter')),
        panel('Audit log', 'action-panel', h('div', { id: 'action-log' }, empty('Loading…'))));
    },

    async load() {
      const q = new URLSearchParams({ limit: '200' });
      if ($('action-node').value.trim()) q.set('node', $('action-node').value.trim());
      if ($('action-job').value.trim()) q.set('job', $('action-job').value.trim());
      const r = await api(`/actions?${q}`);
      if (current !== 'actions') return;
      const rows = list(r);
      fill('action-log', rows.length ? actionTable('action-table', rows) : empty(r.ok ? 'No action recorded.' : `Audit log unavailable: ${errorText(r)}.`));
      $('view-actions').dataset.loaded = 'true';
    },
  };

  window.addEventListener('hashchange', route);
  route();
})();
