// FleetWatch fleet view: one canvas for every GPU, a DOM summary and incident list beside it for people, screen
// readers and tests. Fed by Server-Sent Events: a compact snapshot, then deltas of changed cells (<= 1/s).
'use strict';
(() => {
  const HEALTH = ['unknown', 'healthy', 'warning', 'high', 'critical'];
  // Palette entries after the five health colours: node states from the remediation API, cells outside the filter,
  // then the 32 steps of the value scale.
  const CORDONED = 5, SPARE = 6, DIMMED = 7, SCALE0 = 8;
  const LEGEND_ORDER = ['critical', 'high', 'warning', 'unknown', 'healthy'];
  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat();
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  const canvas = $('heatmap');
  const overlay = $('overlay');
  const wrap = $('canvas-wrap');
  const tooltip = $('tooltip');
  const ctx = canvas.getContext('2d', { alpha: false });
  const octx = overlay.getContext('2d');

  // Layout constants (CSS px). Racks taller than MAX_ROWS nodes continue in a second block; nodes without a rack
  // are shown in blocks of UNRACKED nodes so the view keeps its shape.
  const LABEL_H = 16, GAP_X = 12, GAP_Y = 10, MAX_ROWS = 32, UNRACKED = 16, MAX_CS = 14, MIN_CS = 2;
  const MAX_LISTED_INCIDENTS = 200;

  // Struct-of-arrays fleet state; the index is the server's cell index for the current layout.
  const fleet = {
    layout: null, rev: 0, status: 'connecting', run: null, version: 0, time: null,
    racks: [], nodes: [], nodeRack: [], n: 0,
    cellNode: new Int32Array(0), cellGpu: new Int16Array(0), uuid: [], health: new Uint8Array(0),
    temp: new Float32Array(0), power: new Float32Array(0), util: new Float32Array(0),
    nodeCells: [], byKey: new Map(), nodeIndex: new Map(), counts: {}, incidents: [], resolved: [],
  };

  // What the controller API adds (polled while the fleet view shows; empty when an endpoint is absent): cordoned and
  // spare nodes, each GPU's current straggler score and job.
  const ext = { cordoned: new Uint8Array(0), spare: new Uint8Array(0), score: new Float32Array(0), job: [], jobs: [] };
  const filter = { severity: '', rack: '', job: '' };

  const geo = { cs: 8, gap: 1, blocks: [], x: new Float32Array(0), y: new Float32Array(0), w: 0, h: 0, dpr: 1 };
  const view = { mode: 'health', hover: -1, focus: -1, pending: new Set(), full: true, frame: 0, colours: null };

  // Timings for benchmarks (bounded): when the fleet was first on screen, and what each message and frame cost.
  const stats = { firstDrawAt: null, snapshotAt: null, snapshotMs: null, applyMs: [], drawMs: [], bytes: 0 };
  const record = (list, ms) => { if (list.length < 5000) list.push(ms); };

  // ---------- colours ----------
  function parseColour(text) {
    const s = text.trim();
    if (s.startsWith('#')) {
      const h = s.length === 4 ? s.slice(1).split('').map((c) => c + c).join('') : s.slice(1, 7);
      return [0, 2, 4].map((k) => parseInt(h.slice(k, k + 2), 16));
    }
    const m = s.match(/\d+(\.\d+)?/g) || [0, 0, 0];
    return m.slice(0, 3).map(Number);
  }
  const css = (rgb) => `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;

  function readColours() {
    const st = getComputedStyle(document.documentElement);
    const v = (name) => parseColour(st.getPropertyValue(name));
    const health = HEALTH.map((h) => v(`--health-${h}`));
    const stops = [0, 1, 2, 3, 4].map((k) => v(`--scale-${k}`));
    const scale = [];
    for (let k = 0; k < 32; k++) {
      const t = (k / 31) * 4, a = Math.min(3, Math.floor(t)), f = t - a;
      scale.push(stops[a].map((c, j) => Math.round(c + (stops[a + 1][j] - c) * f)));
    }
    // One palette: entries 0..4 are the health colours, 5..7 cordoned, spare and filtered out, 8..39 the value scale.
    const extra = [v('--health-cordoned'), v('--health-spare'), v('--cell-dimmed')];
    const palette = [...health, ...extra, ...scale];
    view.colours = {
      healthRgb: health, health: health.map(css), stops: stops.map(css), extraRgb: extra, extra: extra.map(css),
      css: palette.map(css),
      bg: st.getPropertyValue('--canvas-bg').trim(),
      label: st.getPropertyValue('--canvas-label').trim(),
      focus: st.getPropertyValue('--focus').trim(), text: st.getPropertyValue('--text').trim(),
    };
  }

  // Colour scales: temperature over the range where GPUs live (idle ~30 C, throttling from ~85 C); power up to the
  // largest value in the fleet (at least 700 W, an H100 SXM's TDP); utilization 0..100 %.
  const SCALES = {
    temperature: { unit: '°C', lo: 25, hi: 95, values: () => fleet.temp },
    power: { unit: 'W', lo: 0, hi: 700, values: () => fleet.power },
    utilization: { unit: '%', lo: 0, hi: 100, values: () => fleet.util },
  };

  // Straggler score: 1 keeps pace with the job's median rank, 0.5 takes twice as long (nvidia-resiliency-ext's relative
  // score, research/dashboard-alerting-anchors.md section 1.5); the scale runs from 1 (cool) down to 0.5 and below (hot).
  SCALES.straggler = { unit: '', lo: 1, hi: 0.5, values: () => ext.score, digits: 2 };

  function matches(i) {
    if (filter.severity !== '') {
      const h = fleet.health[i], want = Number(filter.severity);
      if (want === 0 ? h !== 0 : h < want) return false;
    }
    if (filter.rack !== '' && fleet.racks[fleet.nodeRack[fleet.cellNode[i]]] !== filter.rack) return false;
    if (filter.job !== '' && ext.job[i] !== filter.job) return false;
    return true;
  }
  // Kept as a flag (updated when a filter changes): paletteIndex runs once per GPU on every full redraw.
  let filterOn = false;
  const filtering = () => filterOn;

  function paletteIndex(i) {
    if (filterOn && !matches(i)) return DIMMED;
    if (view.mode === 'health') {
      const h = fleet.health[i], node = fleet.cellNode[i];
      // A cordoned node is out of service whatever its GPUs say, unless one is critical (that is still news).
      if (ext.cordoned[node] && h < 4) return CORDONED;
      if (ext.spare[node] && h <= 1) return SPARE;
      return h;
    }
    const s = SCALES[view.mode], x = s.values()[i];
    if (x === undefined || Number.isNaN(x)) return 0;
    return SCALE0 + Math.round(Math.max(0, Math.min(1, (x - s.lo) / (s.hi - s.lo))) * 31);
  }

  const colourOf = (i) => view.colours.css[paletteIndex(i)];

  function renderLegend() {
    const ul = $('legend');
    ul.textContent = '';
    const item = (colour, text) => {
      const li = document.createElement('li');
      const i = document.createElement('i');
      i.style.background = colour;
      li.append(i, text);
      ul.append(li);
    };
    if (view.mode === 'health') {
      for (const h of LEGEND_ORDER) item(view.colours.health[HEALTH.indexOf(h)], h);
      item(view.colours.extra[0], 'cordoned');
      item(view.colours.extra[1], 'spare');
    } else {
      const s = SCALES[view.mode];
      view.colours.stops.forEach((colour, k) => {
        const x = s.lo + ((s.hi - s.lo) * k) / 4;
        item(colour, `${s.digits ? x.toFixed(s.digits) : fmt.format(Math.round(x))}${k === 4 && s.hi < s.lo ? ' or less' : ''} ${s.unit}`.trim());
      });
      item(view.colours.health[0], 'no data');
    }
    if (filtering()) item(view.colours.extra[2], 'outside the filter');
  }

  // ---------- geometry ----------
  function buildBlocks() {
    const blocks = [];
    let start = 0;
    const nodes = fleet.nodes.length;
    while (start < nodes) {
      const rack = fleet.nodeRack[start];
      let end = start;
      while (end < nodes && fleet.nodeRack[end] === rack) end++;
      const name = fleet.racks[rack] || '';
      const chunk = name ? MAX_ROWS : UNRACKED;
      for (let s = start, part = 1; s < end; s += chunk, part++) {
        const members = [];
        for (let k = s; k < Math.min(end, s + chunk); k++) members.push(k);
        let cols = 1;
        for (const node of members) for (const i of fleet.nodeCells[node]) cols = Math.max(cols, fleet.cellGpu[i] + 1);
        const label = name ? (part > 1 ? `${name} (${part})` : name) : fleet.nodes[members[0]];
        blocks.push({ label, nodes: members, cols, rows: members.length, x: 0, y: 0, grid: null });
      }
      start = end;
    }
    return blocks;
  }

  function place(blocks, cs, width) {
    let x = 0, y = 0, shelf = 0;
    for (const b of blocks) {
      const bw = b.cols * cs, bh = LABEL_H + b.rows * cs;
      if (x > 0 && x + bw > width) { x = 0; y += shelf + GAP_Y; shelf = 0; }
      b.x = x; b.y = y;
      x += bw + GAP_X;
      shelf = Math.max(shelf, bh);
    }
    return y + shelf;
  }

  function computeGeometry() {
    const width = Math.max(200, wrap.clientWidth);
    const top = wrap.getBoundingClientRect().top + window.scrollY;
    const target = Math.max(260, window.innerHeight - top - 24);
    const blocks = buildBlocks();
    let cs = MAX_CS, height = place(blocks, cs, width);
    while (height > target && cs > MIN_CS) height = place(blocks, --cs, width);
    geo.cs = cs;
    geo.gap = cs >= 5 ? 1 : 0;
    geo.blocks = blocks;
    geo.w = width;
    geo.h = Math.max(height, 120);
    geo.x = new Float32Array(fleet.n);
    geo.y = new Float32Array(fleet.n);
    for (const b of blocks) {
      b.grid = new Int32Array(b.rows * b.cols).fill(-1);
      b.nodes.forEach((node, row) => {
        for (const i of fleet.nodeCells[node]) {
          const col = fleet.cellGpu[i];
          if (col < 0 || col >= b.cols) continue;
          b.grid[row * b.cols + col] = i;
          geo.x[i] = b.x + col * cs;
          geo.y[i] = b.y + LABEL_H + row * cs;
        }
      });
    }
    geo.dpr = window.devicePixelRatio || 1;
    for (const c of [canvas, overlay]) {
      c.width = Math.round(geo.w * geo.dpr);
      c.height = Math.round(geo.h * geo.dpr);
      c.style.width = `${geo.w}px`;
      c.style.height = `${geo.h}px`;
    }
    ctx.setTransform(geo.dpr, 0, 0, geo.dpr, 0, 0);
    octx.setTransform(geo.dpr, 0, 0, geo.dpr, 0, 0);
  }

  function cellAt(px, py) {
    const cs = geo.cs;
    for (const b of geo.blocks) {
      if (px < b.x || py < b.y + LABEL_H || px >= b.x + b.cols * cs || py >= b.y + LABEL_H + b.rows * cs) continue;
      const col = Math.floor((px - b.x) / cs), row = Math.floor((py - b.y - LABEL_H) / cs);
      return b.grid[row * b.cols + col];
    }
    return -1;
  }

  // ---------- drawing ----------
  // A full repaint buckets the cells by colour and fills one path of rectangles per colour: measured in headless
  // Chromium about twice as fast as a fillRect per cell, and faster than writing ImageData at 10,000 GPUs
  // (research dashboard-alerting-anchors.md section 1.7 names both). Deltas use fillRect per changed cell.
  function drawAll() {
    const t0 = performance.now();
    const c = view.colours, cs = geo.cs, size = cs - geo.gap, colours = c.css.length;
    ctx.fillStyle = c.bg;
    ctx.fillRect(0, 0, geo.w, geo.h);
    const colourOfCell = new Uint8Array(fleet.n), start = new Int32Array(colours + 1);
    for (let i = 0; i < fleet.n; i++) start[(colourOfCell[i] = paletteIndex(i)) + 1]++;
    for (let p = 0; p < colours; p++) start[p + 1] += start[p];
    const order = new Int32Array(fleet.n), next = start.slice(0, colours);
    for (let i = 0; i < fleet.n; i++) order[next[colourOfCell[i]]++] = i;
    for (let p = 0; p < colours; p++) {
      if (start[p] === start[p + 1]) continue;
      ctx.beginPath();
      for (let k = start[p]; k < start[p + 1]; k++) ctx.rect(geo.x[order[k]], geo.y[order[k]], size, size);
      ctx.fillStyle = c.css[p];
      ctx.fill();
    }
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'top';
    ctx.fillStyle = c.label;
    for (const b of geo.blocks) {
      const shown = fitLabel(b.label, Math.min(b.cols * cs + GAP_X - 3, geo.w - b.x));
      if (shown) ctx.fillText(shown, b.x, b.y + 2);
    }
    canvas.dataset.drawnCells = String(fleet.n);
    canvas.dataset.fullDrawMs = (performance.now() - t0).toFixed(2);
    if (stats.firstDrawAt === null && fleet.n) stats.firstDrawAt = performance.now();
  }

  // Narrow racks keep the end of their name ("…0042"), which is what tells neighbours apart.
  function fitLabel(text, max) {
    if (ctx.measureText(text).width <= max) return text;
    for (let k = 1; k < text.length; k++) {
      const t = `…${text.slice(k)}`;
      if (ctx.measureText(t).width <= max) return t;
    }
    return '';
  }

  function drawCells(cells) {
    const t0 = performance.now();
    const size = geo.cs - geo.gap;
    for (const i of cells) {
      if (i >= fleet.n) continue;
      ctx.fillStyle = colourOf(i);
      ctx.fillRect(geo.x[i], geo.y[i], size, size);
    }
    canvas.dataset.deltaDrawMs = (performance.now() - t0).toFixed(2);
    record(stats.drawMs, performance.now() - t0);
  }

  function drawOverlay() {
    octx.clearRect(0, 0, geo.w, geo.h);
    const ring = (i, width, colour) => {
      if (i < 0 || i >= fleet.n) return;
      octx.lineWidth = width;
      octx.strokeStyle = colour;
      const cs = geo.cs;
      octx.strokeRect(geo.x[i] - width / 2 - 0.5, geo.y[i] - width / 2 - 0.5, cs + width, cs + width);
    };
    ring(view.hover, 1.5, view.colours.text);
    ring(view.focus, 2.5, view.colours.focus);
  }

  // Repaint at most once per animation frame, coalescing every delta that arrived in between.
  function schedule(full) {
    if (full) view.full = true;
    if (view.frame) return;
    view.frame = requestAnimationFrame(() => {
      view.frame = 0;
      if (!view.colours || !fleet.layout) return;
      if (view.full) {
        computeGeometry();
        drawAll();
        view.full = false;
      } else if (view.pending.size) {
        drawCells(view.pending);
      }
      view.pending.clear();
      drawOverlay();
      canvas.dataset.rev = String(fleet.rev);
      canvas.dataset.layout = fleet.layout;
    });
  }

  // ---------- feed ----------
  const num = (x) => (x === null || x === undefined ? NaN : x);

  function applySnapshot(m) {
    const keep = view.focus >= 0 ? keyOf(view.focus) : null;
    const n = m.cells.length;
    fleet.layout = m.layout;
    fleet.racks = m.racks;
    fleet.nodes = m.nodes.map((x) => x[0]);
    fleet.nodeRack = m.nodes.map((x) => x[1]);
    fleet.n = n;
    fleet.cellNode = new Int32Array(n);
    fleet.cellGpu = new Int16Array(n);
    fleet.health = new Uint8Array(n);
    fleet.temp = new Float32Array(n);
    fleet.power = new Float32Array(n);
    fleet.util = new Float32Array(n);
    fleet.uuid = new Array(n);
    fleet.nodeCells = fleet.nodes.map(() => []);
    fleet.byKey = new Map();
    fleet.nodeIndex = new Map(fleet.nodes.map((name, k) => [name, k]));
    resizeExt();
    for (let i = 0; i < n; i++) {
      const c = m.cells[i];
      fleet.cellNode[i] = c[0];
      fleet.cellGpu[i] = c[1];
      fleet.uuid[i] = c[2];
      setValues(i, c[3], c[4], c[5], c[6]);
      fleet.nodeCells[c[0]].push(i);
      fleet.byKey.set(`${fleet.nodes[c[0]]}/${c[1]}`, i);
    }
    view.focus = keep && fleet.byKey.has(keep) ? fleet.byKey.get(keep) : -1;
    view.hover = -1;
    hideTooltip();
    applyHeader(m);
    applyIncidents(m);
    fillNodeList();
    fillRacks();
    countMatches();
    schedule(true);
    if (pendingExt) applyExt(pendingExt); // a new layout: the node and cell indexes changed

  }

  function setValues(i, h, t, p, u) {
    fleet.health[i] = h >= 0 && h < HEALTH.length ? h : 0;
    fleet.temp[i] = num(t);
    fleet.power[i] = num(p);
    fleet.util[i] = num(u);
  }

  function applyDelta(m) {
    if (m.layout !== fleet.layout) { reconnect(); return; }
    for (const c of m.cells) {
      if (c[0] >= fleet.n) continue;
      setValues(c[0], c[1], c[2], c[3], c[4]);
      view.pending.add(c[0]);
    }
    applyHeader(m);
    if (m.incidents) applyIncidents(m);
    if (view.focus >= 0 && view.pending.has(view.focus)) describeFocus();
    schedule(false);
  }

  function applyHeader(m) {
    fleet.rev = m.rev;
    fleet.status = m.status;
    fleet.counts = m.counts;
    fleet.run = m.run || null;
    fleet.version = m.version || 0;
    fleet.time = m.time ? new Date(m.time) : null;
    renderSummary();
    setConnection(m.status);
  }

  function renderSummary() {
    const s = $('summary'), c = fleet.counts;
    for (const k of ['healthy', 'warning', 'high', 'critical', 'unknown']) {
      s.dataset[k] = String(c[k] ?? 0);
      $(`n-${k}`).textContent = fmt.format(c[k] ?? 0);
    }
    s.querySelector('[data-kind="critical"]').toggleAttribute('data-nonzero', (c.critical ?? 0) > 0);
    s.dataset.openIncidents = String(c.openIncidents ?? 0);
    s.dataset.gpus = String(c.gpus ?? 0);
    s.dataset.nodes = String(c.nodes ?? 0);
    s.dataset.rev = String(fleet.rev);
    $('n-incidents').textContent = fmt.format(c.openIncidents ?? 0);
    $('summary-text').textContent =
      `${fmt.format(c.gpus ?? 0)} GPUs on ${fmt.format(c.nodes ?? 0)} nodes: ${fmt.format(c.critical ?? 0)} critical, ` +
      `${fmt.format(c.high ?? 0)} high, ${fmt.format(c.warning ?? 0)} warning, ${fmt.format(c.unknown ?? 0)} unknown, ` +
      `${fmt.format(c.healthy ?? 0)} healthy; ${fmt.format(c.openIncidents ?? 0)} open incidents.`;
    const parts = [`${fmt.format(c.gpus ?? 0)} GPUs`, `${fmt.format(c.nodes ?? 0)} nodes`, `${fmt.format(fleet.racks.filter((r) => r).length)} racks`];
    if (fleet.time) parts.push(`frame ${timeFmt.format(fleet.time)} (v${fleet.version})`);
    $('fleet-meta').textContent = parts.join(' · ');
  }

  const CONNECTION_TEXT = {
    connecting: 'Connecting…', waiting: 'Waiting for controller…', live: 'Live', resyncing: 'Resyncing…',
    stale: 'Controller silent', disconnected: 'Disconnected, reconnecting…', unauthorized: 'Not signed in: reload the page',
  };

  function setConnection(state) {
    const el = $('connection');
    if (el.dataset.state !== state) {
      el.dataset.state = state;
      el.querySelector('.text').textContent = CONNECTION_TEXT[state] || state;
    }
    $('waiting').hidden = !(state === 'waiting' || (state === 'connecting' && !fleet.layout));
  }

  function incidentItem(inc) {
    const li = document.createElement('li');
    li.tabIndex = 0;
    li.dataset.id = inc.id;
    li.dataset.node = inc.node;
    li.dataset.gpu = inc.gpu === null || inc.gpu === undefined ? '' : String(inc.gpu);
    li.dataset.severity = inc.severity;
    li.dataset.category = inc.category;
    const sev = document.createElement('span');
    sev.className = 'sev';
    sev.textContent = inc.severity;
    const what = document.createElement('span');
    what.className = 'what';
    what.textContent = inc.category.replaceAll('_', ' ');
    const where = document.createElement('span');
    where.className = 'where';
    const gpu = li.dataset.gpu === '' ? 'whole node' : `GPU ${inc.gpu}`;
    const when = inc.resolvedAt
      ? `resolved ${timeFmt.format(new Date(inc.resolvedAt))}`
      : `since ${timeFmt.format(new Date(inc.openedAt))} · ${inc.action.replaceAll('_', ' ')}`;
    where.textContent = `${inc.node} · ${gpu} · ${when}`;
    li.title = inc.summary || '';
    li.setAttribute('aria-label', `${inc.severity} ${what.textContent} on ${inc.node} ${gpu}, ${when}${inc.summary ? `: ${inc.summary}` : ''}`);
    li.append(sev, what, where);
    return li;
  }

  function applyIncidents(m) {
    fleet.incidents = m.incidents || [];
    fleet.resolved = m.resolved || [];
    const items = fleet.incidents.slice(0, MAX_LISTED_INCIDENTS).map(incidentItem);
    const hidden = (fleet.counts.openIncidents ?? fleet.incidents.length) - items.length;
    if (hidden > 0) {
      const li = document.createElement('li');
      li.className = 'more';
      li.textContent = `and ${fmt.format(hidden)} more`;
      items.push(li);
    }
    $('incidents').replaceChildren(...items);
    $('incidents-empty').hidden = fleet.incidents.length > 0;
    $('incident-count').textContent = fmt.format(fleet.counts.openIncidents ?? fleet.incidents.length);
    $('resolved').replaceChildren(...fleet.resolved.map(incidentItem));
    $('resolved-count').textContent = fmt.format(fleet.resolved.length);
  }

  function fillNodeList() {
    const list = $('node-names');
    const options = fleet.nodes.slice(0, 20000).map((name) => {
      const o = document.createElement('option');
      o.value = name;
      return o;
    });
    list.replaceChildren(...options);
  }

  let source = null, retry = 0;
  function connect() {
    source = new EventSource('/api/fleet/stream');
    source.addEventListener('snapshot', (e) => {
      const t0 = performance.now();
      retry = 0;
      stats.bytes += e.data.length;
      applySnapshot(JSON.parse(e.data));
      if (stats.snapshotAt === null) { stats.snapshotAt = t0; stats.snapshotMs = performance.now() - t0; }
    });
    source.addEventListener('delta', (e) => {
      const t0 = performance.now();
      stats.bytes += e.data.length;
      applyDelta(JSON.parse(e.data));
      record(stats.applyMs, performance.now() - t0);
    });
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) { setConnection('disconnected'); return; }
      // The browser gave up (for example on a 401): find out why, then try again with backoff.
      fetch('/api/fleet', { method: 'HEAD', credentials: 'same-origin' }).then((r) => {
        if (r.status === 401) { setConnection('unauthorized'); return; }
        setConnection('disconnected');
        setTimeout(() => reconnect(), Math.min(30000, 1000 * 2 ** retry++));
      }, () => {
        setConnection('disconnected');
        setTimeout(() => reconnect(), Math.min(30000, 1000 * 2 ** retry++));
      });
    };
  }

  function reconnect() {
    if (source) source.close();
    connect();
  }

  // ---------- tooltip, hover, keyboard ----------
  const keyOf = (i) => `${fleet.nodes[fleet.cellNode[i]]}/${fleet.cellGpu[i]}`;
  const unit = (x, u) => (Number.isNaN(x) ? '—' : `${fmt.format(x)} ${u}`);

  function describe(i) {
    const node = fleet.nodes[fleet.cellNode[i]], gpu = fleet.cellGpu[i];
    const state = ext.cordoned[fleet.cellNode[i]] ? ', node cordoned' : ext.spare[fleet.cellNode[i]] ? ', spare node' : '';
    const score = Number.isNaN(ext.score[i]) ? '' : `, straggler score ${ext.score[i].toFixed(2)} in job ${ext.job[i]}`;
    return `${node} GPU ${gpu}, ${HEALTH[fleet.health[i]]}${state}, ${unit(fleet.temp[i], '°C')}, ${unit(fleet.power[i], 'W')}, ` +
      `${unit(fleet.util[i], '%')} utilization${score}`;
  }

  function showTooltip(i) {
    const node = fleet.nodes[fleet.cellNode[i]], gpu = fleet.cellGpu[i], rack = fleet.racks[fleet.nodeRack[fleet.cellNode[i]]];
    const title = document.createElement('div');
    title.className = 't-title';
    title.textContent = `${node} · GPU ${gpu}`;
    const uuid = document.createElement('div');
    uuid.className = 't-uuid';
    uuid.textContent = fleet.uuid[i] || 'UUID not reported';
    const dl = document.createElement('dl');
    const row = (k, v) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dl.append(dt, dd);
    };
    row('Health', HEALTH[fleet.health[i]]);
    row('Temperature', unit(fleet.temp[i], '°C'));
    row('Power', unit(fleet.power[i], 'W'));
    row('Utilization', unit(fleet.util[i], '%'));
    row('Rack', rack || '—');
    if (!Number.isNaN(ext.score[i])) row('Straggler score', `${ext.score[i].toFixed(2)} (${ext.job[i]})`);
    if (ext.cordoned[fleet.cellNode[i]]) row('Node', 'cordoned');
    else if (ext.spare[fleet.cellNode[i]]) row('Node', 'spare');
    const parts = [title, uuid, dl];
    const related = fleet.incidents.filter((x) => x.node === node && (x.gpu === null || x.gpu === undefined || x.gpu === gpu));
    if (related.length) {
      const inc = document.createElement('div');
      inc.className = 't-inc';
      inc.textContent = related.slice(0, 3).map((x) => `${x.severity}: ${x.category.replaceAll('_', ' ')}${x.summary ? ` (${x.summary})` : ''}`).join('\n');
      inc.style.whiteSpace = 'pre-line';
      parts.push(inc);
    }
    tooltip.replaceChildren(...parts);
    tooltip.hidden = false;
    const cs = geo.cs;
    let left = geo.x[i] + cs + 12, top = geo.y[i] - 8;
    if (left + tooltip.offsetWidth > wrap.clientWidth) left = geo.x[i] - tooltip.offsetWidth - 12;
    if (top + tooltip.offsetHeight > geo.h) top = Math.max(0, geo.h - tooltip.offsetHeight);
    tooltip.style.left = `${Math.max(0, left)}px`;
    tooltip.style.top = `${Math.max(0, top)}px`;
  }

  function hideTooltip() { tooltip.hidden = true; }

  function describeFocus() {
    if (view.focus < 0) return;
    $('cell-detail').textContent = describe(view.focus);
    showTooltip(view.focus);
  }

  function focusCell(i) {
    if (i < 0 || i >= fleet.n) return;
    view.focus = i;
    describeFocus();
    drawOverlay();
  }

  function openNode(i) {
    location.hash = `#/node/${encodeURIComponent(fleet.nodes[fleet.cellNode[i]])}?gpu=${fleet.cellGpu[i]}`;
  }

  function pickForFault(i) {
    $('fault-node').value = fleet.nodes[fleet.cellNode[i]];
    $('fault-gpu').value = String(fleet.cellGpu[i]);
  }

  canvas.addEventListener('mousemove', (e) => {
    const r = canvas.getBoundingClientRect();
    const i = cellAt(e.clientX - r.left, e.clientY - r.top);
    if (i === view.hover) return;
    view.hover = i;
    if (i >= 0) showTooltip(i); else if (view.focus >= 0 && document.activeElement === canvas) showTooltip(view.focus); else hideTooltip();
    drawOverlay();
  });
  canvas.addEventListener('mouseleave', () => { view.hover = -1; if (document.activeElement !== canvas) hideTooltip(); drawOverlay(); });
  canvas.addEventListener('click', (e) => {
    const r = canvas.getBoundingClientRect();
    const i = cellAt(e.clientX - r.left, e.clientY - r.top);
    if (i >= 0) { focusCell(i); pickForFault(i); openNode(i); }
  });
  canvas.addEventListener('focus', () => { if (view.focus < 0 && fleet.n) focusCell(0); else describeFocus(); });
  canvas.addEventListener('blur', () => { hideTooltip(); });

  function sameGpuOnNode(node, gpu) {
    const cells = fleet.nodeCells[node];
    if (!cells || !cells.length) return -1;
    let best = cells[0];
    for (const i of cells) if (Math.abs(fleet.cellGpu[i] - gpu) < Math.abs(fleet.cellGpu[best] - gpu)) best = i;
    return best;
  }

  canvas.addEventListener('keydown', (e) => {
    if (!fleet.n) return;
    const i = Math.max(0, view.focus);
    const node = fleet.cellNode[i], gpu = fleet.cellGpu[i];
    let next = -1;
    switch (e.key) {
      case 'ArrowRight': next = Math.min(fleet.n - 1, i + 1); break;
      case 'ArrowLeft': next = Math.max(0, i - 1); break;
      case 'ArrowDown': next = sameGpuOnNode(Math.min(fleet.nodes.length - 1, node + 1), gpu); break;
      case 'ArrowUp': next = sameGpuOnNode(Math.max(0, node - 1), gpu); break;
      case 'PageDown': next = sameGpuOnNode(Math.min(fleet.nodes.length - 1, node + 8), gpu); break;
      case 'PageUp': next = sameGpuOnNode(Math.max(0, node - 8), gpu); break;
      case 'Home': next = 0; break;
      case 'End': next = fleet.n - 1; break;
      case 'Enter': e.preventDefault(); openNode(i); return;
      case 'f': case 'F': case ' ': pickForFault(i); $('cell-detail').textContent = `${describe(i)}. Put in the fault form.`; e.preventDefault(); return;
      case 'Escape': hideTooltip(); return;
      default: return;
    }
    e.preventDefault();
    focusCell(next);
  });

  for (const list of [$('incidents'), $('resolved')]) {
    list.addEventListener('click', (e) => selectIncident(e.target.closest('li')));
    list.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selectIncident(e.target.closest('li')); } });
  }

  function selectIncident(li) {
    if (!li || !li.dataset.node) return;
    const key = `${li.dataset.node}/${li.dataset.gpu === '' ? 0 : li.dataset.gpu}`;
    const i = fleet.byKey.get(key);
    if (i === undefined) return;
    canvas.focus({ preventScroll: true });
    focusCell(i);
    pickForFault(i);
    canvas.scrollIntoView({ block: 'nearest' });
  }

  // ---------- fault form ----------
  const NEEDS_GPU = new Set(['xid', 'ecc_dbe', 'over_temperature', 'nvlink_errors', 'gpu_lost', 'clear']);
  function syncFaultFields() {
    const kind = $('fault-kind').value;
    document.querySelector('label[data-for="gpu"]').hidden = !NEEDS_GPU.has(kind);
    document.querySelector('label[data-for="xid"]').hidden = kind !== 'xid';
  }
  $('fault-kind').addEventListener('change', syncFaultFields);
  syncFaultFields();

  $('fault-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const kind = $('fault-kind').value;
    const body = { node: $('fault-node').value.trim(), kind };
    const gpu = $('fault-gpu').value.trim(), xid = $('fault-xid').value.trim();
    if (NEEDS_GPU.has(kind) && gpu !== '') body.gpu = Number(gpu);
    if (kind === 'xid' && xid !== '') body.xid = Number(xid);
    const out = $('fault-result');
    try {
      const r = await fetch('/api/faults', {
        method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      });
      const answer = await r.json().catch(() => ({}));
      out.dataset.ok = String(r.ok);
      out.textContent = r.ok
        ? `Sent ${kind}${body.xid ? ` ${body.xid}` : ''} to ${body.node}${body.gpu !== undefined ? ` GPU ${body.gpu}` : ''}.`
        : (answer.detail || `Rejected (HTTP ${r.status}).`);
    } catch (err) {
      out.dataset.ok = 'false';
      out.textContent = `Not sent: ${err.message}`;
    }
  });

  // ---------- controller API overlays: cordons, spares, straggler scores ----------
  let pendingExt = null;
  function resizeExt() {
    ext.cordoned = new Uint8Array(fleet.nodes.length);
    ext.spare = new Uint8Array(fleet.nodes.length);
    ext.score = new Float32Array(fleet.n).fill(NaN);
    ext.job = new Array(fleet.n).fill(null); // no holes: the change check compares every entry
  }

  async function getJson(path) {
    try {
      const r = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      return r.ok ? await r.json() : null;
    } catch { return null; }
  }

  function applyExt(data) {
    pendingExt = data;
    if (!fleet.layout) return;
    const before = { cordoned: ext.cordoned, spare: ext.spare, score: ext.score, job: ext.job };
    resizeExt();
    const nodeOf = (x) => (typeof x === 'string' ? x : x && x.node);
    for (const c of data.cordons || []) {
      const k = fleet.nodeIndex.get(nodeOf(c));
      if (k !== undefined) ext.cordoned[k] = 1;
    }
    for (const sp of data.spares || []) {
      const k = fleet.nodeIndex.get(nodeOf(sp));
      if (k !== undefined && (!sp.state || sp.state === 'free')) ext.spare[k] = 1;
    }
    const jobs = new Set();
    for (const r of data.scores || []) {
      const i = fleet.byKey.get(`${r.node}/${r.gpu}`);
      jobs.add(r.job);
      if (i === undefined) continue;
      if (Number.isNaN(ext.score[i]) || r.score < ext.score[i]) ext.score[i] = r.score;
      ext.job[i] = r.job;
    }
    ext.jobs = [...jobs].sort();
    fillJobs();
    const s = $('summary');
    s.dataset.cordoned = String(ext.cordoned.reduce((a, b) => a + b, 0));
    s.dataset.spare = String(ext.spare.reduce((a, b) => a + b, 0));
    // Repaint only when something the canvas shows changed: a poll that brings nothing new costs no redraw.
    const same = (a, b) => a.length === b.length && a.every((x, k) => x === b[k] || (Number.isNaN(x) && Number.isNaN(b[k])));
    if (same(before.cordoned, ext.cordoned) && same(before.spare, ext.spare) && same(before.score, ext.score) && same(before.job, ext.job)) return;
    countMatches();
    schedule(true);
  }

  async function pollExt() {
    if (document.body.dataset.view === 'fleet' && !document.hidden) await pollOnce();
    setTimeout(pollExt, 5000);
  }

  // ---------- search and filters ----------
  function fillSelect(select, values) {
    const keep = select.value;
    const options = [select.options[0], ...values.map((v) => { const o = document.createElement('option'); o.value = v; o.textContent = v; return o; })];
    select.replaceChildren(...options);
    select.value = values.includes(keep) ? keep : '';
  }
  const fillRacks = () => fillSelect($('filter-rack'), fleet.racks.filter((r) => r));
  const fillJobs = () => fillSelect($('filter-job'), ext.jobs);

  function countMatches() {
    let n = 0;
    for (let i = 0; i < fleet.n; i++) if (matches(i)) n++;
    canvas.dataset.matching = String(n);
    $('filter-result').textContent = filtering() ? `${fmt.format(n)} of ${fmt.format(fleet.n)} GPUs match` : '';
  }

  for (const [id, key] of [['filter-severity', 'severity'], ['filter-rack', 'rack'], ['filter-job', 'job']]) {
    $(id).addEventListener('change', (e) => {
      filter[key] = e.target.value;
      filterOn = filter.severity !== '' || filter.rack !== '' || filter.job !== '';
      renderLegend();
      countMatches();
      schedule(true);
    });
  }

  function searchResult(text, href, node, gpu) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    if (node) a.dataset.node = node;
    if (gpu !== undefined) a.dataset.gpu = String(gpu);
    li.append(a);
    return li;
  }

  async function runSearch(q) {
    const out = $('search-results');
    q = q.trim();
    if (!q) { out.hidden = true; out.replaceChildren(); return; }
    const lower = q.toLowerCase(), items = [], seen = new Set();
    const add = (node, gpu, what) => {
      const key = `${node}/${gpu ?? ''}`;
      if (seen.has(key) || items.length >= 50) return;
      seen.add(key);
      items.push(searchResult(`${node}${gpu === undefined ? '' : ` · GPU ${gpu}`}${what ? ` (${what})` : ''}`,
        `#/node/${encodeURIComponent(node)}${gpu === undefined ? '' : `?gpu=${gpu}`}`, node, gpu));
    };
    for (const name of fleet.nodes) if (name.toLowerCase().includes(lower)) add(name);
    for (let i = 0; i < fleet.n; i++) if (fleet.uuid[i] && fleet.uuid[i].toLowerCase().includes(lower)) add(fleet.nodes[fleet.cellNode[i]], fleet.cellGpu[i], fleet.uuid[i]);
    for (const job of ext.jobs) if (job.toLowerCase().includes(lower) && items.length < 50) items.push(searchResult(`job ${job}`, `#/jobs/${encodeURIComponent(job)}`));
    // PCI bus ids and jobs the page has not seen are known to the controller.
    const remote = await getJson(`/api/v1/search?q=${encodeURIComponent(q)}`);
    if (remote) {
      for (const g of remote.gpus || []) add(g.node, g.gpu, g.pciBusId && g.pciBusId.toLowerCase().includes(lower) ? `PCI ${g.pciBusId}` : '');
      for (const job of remote.jobs || []) if (!ext.jobs.includes(job)) items.push(searchResult(`job ${job}`, `#/jobs/${encodeURIComponent(job)}`));
    }
    if (!items.length) { const li = document.createElement('li'); li.className = 'empty'; li.textContent = `Nothing matches "${q}".`; items.push(li); }
    out.replaceChildren(...items);
    out.hidden = false;
    out.dataset.count = String(seen.size);
  }

  $('fleet-search').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.target.value = ''; runSearch(''); }
    if (e.key === 'ArrowDown') { const first = $('search-results').querySelector('a'); if (first) { e.preventDefault(); first.focus(); } }
  });
  $('fleet-tools').addEventListener('submit', (e) => { e.preventDefault(); runSearch($('fleet-search').value); });
  let searchTimer = 0;
  $('fleet-search').addEventListener('input', (e) => { clearTimeout(searchTimer); searchTimer = setTimeout(() => runSearch(e.target.value), 250); });

  // ---------- colour mode, theme, resize ----------
  $('colour-mode').addEventListener('change', (e) => { view.mode = e.target.value; renderLegend(); schedule(true); });
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => { readColours(); renderLegend(); schedule(true); });
  let lastWidth = 0;
  new ResizeObserver(() => {
    if (wrap.clientWidth !== lastWidth) { lastWidth = wrap.clientWidth; schedule(true); }
  }).observe(wrap);

  // A small read-only hook for tests and benchmarks: where a GPU is drawn and what colour is there.
  window.fleetwatch = {
    cellCenter(node, gpu) {
      const i = fleet.byKey.get(`${node}/${gpu}`);
      if (i === undefined || !geo.x.length) return null;
      const half = (geo.cs - geo.gap) / 2;
      return { x: Math.floor((geo.x[i] + half) * geo.dpr), y: Math.floor((geo.y[i] + half) * geo.dpr) };
    },
    pixel(node, gpu) {
      const p = this.cellCenter(node, gpu);
      return p ? Array.from(ctx.getImageData(p.x, p.y, 1, 1).data.slice(0, 3)) : null;
    },
    healthColour(name) {
      const k = HEALTH.indexOf(name);
      return k >= 0 ? view.colours.healthRgb[k] : view.colours.extraRgb[['cordoned', 'spare', 'dimmed'].indexOf(name)];
    },
    // For the other views: what the live feed says about a node's GPUs, and the incidents it carries.
    gpusOf(node) {
      const k = fleet.nodeIndex.get(node);
      if (k === undefined) return [];
      return fleet.nodeCells[k].map((i) => ({
        gpu: fleet.cellGpu[i], uuid: fleet.uuid[i], health: HEALTH[fleet.health[i]],
        temperatureC: fleet.temp[i], powerW: fleet.power[i], utilizationPct: fleet.util[i],
      }));
    },
    get incidents() { return fleet.incidents; },
    get resolved() { return fleet.resolved; },
    get nodes() { return fleet.nodes; },
    refreshOverlays() { pollOnce(); },
    get rev() { return fleet.rev; },
    stats,
  };

  async function pollOnce() {
    const [cordons, spares, scores] = await Promise.all([getJson('/api/v1/cordons'), getJson('/api/v1/spares'), getJson('/api/v1/stragglers/scores')]);
    applyExt({ cordons: Array.isArray(cordons) ? cordons : [], spares: Array.isArray(spares) ? spares : [], scores: Array.isArray(scores) ? scores : [] });
  }

  readColours();
  renderLegend();
  setConnection('connecting');
  connect();
  pollExt();
})();
