// shoebox web UI: a small single-page app over the JSON API (docs/API.md). Hash routes:
// #/ (home: rediscover, on this day), #/search?q=..., #/photo/ID, #/browse, #/dupes, #/crawl.
// No framework, nothing from the network but this server. Built with the DOM API only (no
// innerHTML with data), so file names can never inject markup.
'use strict';

const TOKEN = document.querySelector('meta[name="shoebox-token"]').content;
const $ = (sel, root = document) => root.querySelector(sel);
const view = $('#view');

const state = {
  list: [],          // ids of the grid the user last opened a photo from
  listLabel: '',
  listBack: '#/',
  status: null,
  pollTimer: 0,
  route: '',
  renderToken: 0,    // bumps on each route change: stale async work checks it
};

// ---- helpers ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, opts = {}) {
  const headers = { 'X-Shoebox-Token': TOKEN };
  if (opts.body) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.error) || ('HTTP ' + res.status));
    err.status = res.status;
    throw err;
  }
  return data;
}

function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/';
  const qi = h.indexOf('?');
  const path = qi < 0 ? h : h.slice(0, qi);
  const params = new URLSearchParams(qi < 0 ? '' : h.slice(qi + 1));
  return { path, params };
}

function fmtDate(s) {
  if (!s) return 'undated';
  const d = new Date(s.length >= 19 ? s.slice(0, 19) : s);
  if (isNaN(d)) return s;
  return d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

function fmtDateTime(s) {
  if (!s) return 'unknown';
  const d = new Date(s.slice(0, 19));
  if (isNaN(d)) return s;
  return d.toLocaleString(undefined, { dateStyle: 'long', timeStyle: 'short' });
}

function fmtBytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1048576) return (n / 1024).toFixed(0) + ' KB';
  return (n / 1048576).toFixed(1) + ' MB';
}

function fmtExposure(s) {
  if (s === null || s === undefined) return null;
  if (s >= 1) return s.toFixed(s >= 10 ? 0 : 1) + ' s';
  return '1/' + Math.round(1 / s) + ' s';
}

function fmtDuration(s) {
  if (s === null || s === undefined || s < 0) return '–';
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

function basename(p) {
  const i = p.lastIndexOf('/');
  return i < 0 ? p : p.slice(i + 1);
}

function monthName(ym) {
  const [y, m] = ym.split('-').map(Number);
  return new Date(y, m - 1, 1).toLocaleDateString(undefined, { month: 'short' });
}

// ---- the justified grid -------------------------------------------------------------------
// Photos are laid out in rows of equal height that fill the width exactly (as Flickr and
// Google Photos do): add photos to a row until its width at the target height exceeds the
// container, then scale the row to fit.

class Grid {
  constructor(container, { onOpen, rowHeight } = {}) {
    this.container = container;
    this.items = [];
    this.onOpen = onOpen;
    this.rowHeight = rowHeight || (window.innerWidth < 600 ? 130 : 210);
    this.root = el('div', { class: 'grid' });
    container.append(this.root);
    this.resizeObs = new ResizeObserver(() => this.layout());
    this.resizeObs.observe(this.root);
  }

  add(results) {
    for (const r of results) {
      if (this.items.some(x => x.r.id === r.id)) continue;
      const img = el('img', { src: '/thumb/' + r.id, alt: basename(r.path || ''), loading: 'lazy', decoding: 'async' });
      img.addEventListener('error', () => a.classList.add('broken'), { once: true });
      const cap = [];
      if (typeof r.score === 'number') cap.push(el('span', { class: 'score', text: r.score.toFixed(2) }));
      if (r.paths && r.paths.length > 1) cap.push(el('span', { class: 'copies', text: '×' + r.paths.length, title: r.paths.length + ' copies' }));
      const a = el('a', { class: 'tile', href: '#/photo/' + r.id, title: (r.path || '') + '\n' + fmtDate(r.taken_at), 'data-id': r.id },
        img, cap.length ? el('span', { class: 'badges' }, cap) : null);
      a.addEventListener('click', () => { if (this.onOpen) this.onOpen(r.id); });
      this.items.push({ r, a });
      this.root.append(a);
    }
    this.layout();
  }

  ids() { return this.items.map(x => x.r.id); }

  layout() {
    const W = this.root.clientWidth;
    if (!W) return;
    const gap = 4;
    let row = [], rowW = 0;
    const flush = (last) => {
      if (!row.length) return;
      const avail = W - gap * (row.length - 1);
      let h = this.rowHeight * avail / rowW;
      if (last && h > this.rowHeight * 1.3) h = this.rowHeight; // a short last row stays short
      for (const it of row) {
        const w = Math.max(40, it.ar * h);
        it.a.style.width = Math.floor(w) + 'px';
        it.a.style.height = Math.floor(h) + 'px';
      }
      row = []; rowW = 0;
    };
    for (const it of this.items) {
      const w = it.r.width || 4, h = it.r.height || 3;
      it.ar = Math.min(4, Math.max(0.25, w / h));
      row.push(it);
      rowW += it.ar * this.rowHeight;
      if (rowW + gap * (row.length - 1) >= W) flush(false);
    }
    flush(true);
  }

  destroy() { this.resizeObs.disconnect(); }
}

// A grid fed page by page from an endpoint as the user scrolls.
function infiniteGrid(container, fetchPage, { onOpen, pageSize = 60, onFirst } = {}) {
  const grid = new Grid(container, { onOpen });
  const sentinel = el('div', { class: 'sentinel' });
  const more = el('div', { class: 'loading', text: 'Loading…' });
  container.append(more, sentinel);
  let offset = 0, done = false, busy = false, first = true;
  const token = state.renderToken;
  const load = async () => {
    if (busy || done || token !== state.renderToken) return;
    busy = true;
    try {
      const data = await fetchPage(offset, pageSize);
      if (token !== state.renderToken) return;
      if (first && onFirst) onFirst(data);
      first = false;
      grid.add(data.results);
      offset += data.results.length;
      done = !data.more || data.results.length === 0;
    } catch (e) {
      done = true;
      if (token === state.renderToken) container.append(el('p', { class: 'error', text: e.message }));
    } finally {
      busy = false;
      more.hidden = done;
      if (!done) requestAnimationFrame(() => { if (isVisible(sentinel)) load(); });
    }
  };
  const io = new IntersectionObserver(es => { if (es.some(e => e.isIntersecting)) load(); }, { rootMargin: '800px' });
  io.observe(sentinel);
  load();
  grid.stop = () => io.disconnect();
  return grid;
}

function isVisible(e) {
  const r = e.getBoundingClientRect();
  return r.top < window.innerHeight + 800;
}

// ---- search -------------------------------------------------------------------------------

const FILTERS = [['after', 'f-after'], ['before', 'f-before'], ['in', 'f-in'], ['camera', 'f-camera'],
  ['tag', 'f-tag'], ['format', 'f-format'], ['min_score', 'f-min']];

function searchHash(q, params) {
  const p = new URLSearchParams();
  if (q) p.set('q', q);
  for (const [k] of FILTERS) if (params[k]) p.set(k, params[k]);
  return '#/search?' + p.toString();
}

function currentFilters() {
  const out = {};
  for (const [k, id] of FILTERS) {
    const v = $('#' + id).value;
    if (v) out[k] = v;
  }
  return out;
}

let facetsLoaded = false;
async function loadFacets() {
  if (facetsLoaded) return;
  try {
    const [f, folders] = await Promise.all([api('/api/facets'), api('/api/folders')]);
    const fill = (id, items, key) => {
      const s = $('#' + id);
      const keep = s.value;
      while (s.options.length > 1) s.remove(1);
      for (const it of items) s.append(el('option', { value: it[key] }, it[key] + ' (' + it.count + ')'));
      s.value = keep;
    };
    fill('f-camera', f.cameras, 'name');
    fill('f-tag', f.tags, 'name');
    fill('f-format', f.formats, 'name');
    fill('f-in', folders.folders, 'path');
    facetsLoaded = true;
  } catch (e) { /* the filters stay "any" */ }
}

function setFilterControls(params) {
  for (const [k, id] of FILTERS) {
    const e = $('#' + id);
    const v = params.get(k) || '';
    if (e.tagName === 'SELECT' && v && ![...e.options].some(o => o.value === v)) e.append(el('option', { value: v }, v));
    e.value = v;
  }
}

function renderSearch(params) {
  const q = params.get('q') || '';
  $('#q').value = q;
  setFilterControls(params);
  const active = FILTERS.filter(([k]) => params.get(k)).length;
  $('#filters-toggle').textContent = active ? 'Filters · ' + active : 'Filters';
  const head = el('div', { class: 'results-head' }, el('h1', { text: q ? '“' + q + '”' : 'Photos' }), el('span', { class: 'muted', id: 'results-info' }));
  view.append(head);
  const wrap = el('section', {});
  view.append(wrap);
  let count = 0;
  const api_params = new URLSearchParams(params);
  const grid = infiniteGrid(wrap, async (offset, n) => {
    api_params.set('offset', offset);
    api_params.set('n', n);
    const data = await api('/api/search?' + api_params.toString());
    count += data.results.length;
    const info = [];
    info.push(count + (data.more ? '+' : '') + ' photo' + (count === 1 ? '' : 's'));
    if (typeof data.min_score === 'number') info.push(data.min_score <= -1 ? 'no relevance cutoff' : 'relevance cutoff ' + data.min_score.toFixed(2));
    $('#results-info').textContent = info.join(' · ');
    if (offset === 0 && data.results.length === 0) {
      wrap.append(el('div', { class: 'empty' },
        el('p', { text: data.notice ? 'Nothing to search yet: ' + data.notice + '.' : 'No photo matches well enough.' }),
        typeof data.min_score === 'number' && data.min_score > -1 ? el('a', { href: searchHash(q, Object.assign(currentFilters(), { min_score: '-1' })), text: 'Show weaker matches' }) : null));
    }
    return data;
  }, { onOpen: () => rememberList(grid, q ? '“' + q + '”' : 'Photos') });
  return grid;
}

function rememberList(grid, label) {
  state.list = grid.ids();
  state.listLabel = label;
  state.listBack = location.hash || '#/';
}

// ---- photo ------------------------------------------------------------------------------

async function renderPhoto(id) {
  const token = state.renderToken;
  let p;
  try {
    p = await api('/api/photos/' + id);
  } catch (e) {
    view.append(el('p', { class: 'error', text: e.status === 404 ? 'No such photo.' : e.message }));
    return;
  }
  if (token !== state.renderToken) return;
  const idx = state.list.indexOf(p.id);
  const prev = idx > 0 ? state.list[idx - 1] : null;
  const next = idx >= 0 && idx < state.list.length - 1 ? state.list[idx + 1] : null;
  const img = el('img', { class: 'preview', src: '/thumb/' + p.id + '?size=1024', alt: basename(p.path || '') });
  const stage = el('div', { class: 'stage' },
    prev ? el('a', { class: 'nav-arrow left', href: '#/photo/' + prev, title: 'Previous (←)', 'aria-label': 'Previous' }, '‹') : null,
    img,
    next ? el('a', { class: 'nav-arrow right', href: '#/photo/' + next, title: 'Next (→)', 'aria-label': 'Next' }, '›') : null,
    el('a', { class: 'close', href: state.listBack, title: 'Back (Esc)', 'aria-label': 'Back' }, '×'));
  const meta = el('dl', { class: 'meta' });
  const row = (k, v) => { if (v !== null && v !== undefined && v !== '') meta.append(el('dt', { text: k }), el('dd', {}, v)); };
  row('Taken', fmtDateTime(p.taken_at) + (p.tz_offset ? ' (UTC' + p.tz_offset + ')' : '') + (p.time_source && p.time_source !== 'exif' ? ' · from ' + p.time_source : ''));
  // "NIKON CORPORATION" + "NIKON D70" reads best as the model alone
  const makeWord = p.make ? p.make.split(' ')[0].toLowerCase() : '';
  row('Camera', p.model && makeWord && p.model.toLowerCase().startsWith(makeWord) ? p.model : [p.make, p.model].filter(Boolean).join(' ') || null);
  row('Lens', p.lens);
  const expo = [p.focal_mm ? p.focal_mm.toFixed(0) + ' mm' : null, p.fnumber ? 'ƒ/' + p.fnumber.toFixed(1) : null,
    fmtExposure(p.exposure_s), p.iso ? 'ISO ' + p.iso : null].filter(Boolean).join(' · ');
  row('Exposure', expo || null);
  row('Size', p.width + ' × ' + p.height + ' · ' + (p.format || '?').toUpperCase() + ' · ' + fmtBytes(p.size));
  if (p.gps) row('Location', p.gps.lat.toFixed(5) + ', ' + p.gps.lon.toFixed(5) + (p.gps.alt !== null ? ' · ' + Math.round(p.gps.alt) + ' m' : ''));
  if (p.caption) row('Caption', p.caption);
  if (p.texts && p.texts.ocr) row('Text', el('span', { class: 'ocr', text: p.texts.ocr.length > 400 ? p.texts.ocr.slice(0, 400) + '…' : p.texts.ocr }));
  if (p.tags.length) row('Tags', el('span', { class: 'tags' }, p.tags.map(t => el('a', { class: 'tag', href: searchHash('', { tag: t.tag }), text: t.tag }))));
  const paths = el('ul', { class: 'paths' }, p.paths.map(x => el('li', { title: x }, el('span', { text: x }))));
  const side = el('aside', { class: 'side' },
    el('h1', { text: basename(p.path || ('photo ' + p.id)) }),
    meta,
    el('h2', { text: p.paths.length > 1 ? p.paths.length + ' copies' : 'File' }), paths,
    el('div', { class: 'actions' },
      el('a', { class: 'button', href: '/photo/' + p.id, target: '_blank', rel: 'noopener' }, 'Open original'),
      el('a', { class: 'button ghost', href: searchHash('id:' + p.id, {}) }, 'Search with this photo')),
    idx >= 0 ? el('p', { class: 'muted small', text: (idx + 1) + ' of ' + state.list.length + ' in ' + state.listLabel + ' · ← → to move, Esc to go back' }) : null);
  view.append(el('section', { class: 'photo' }, stage, side));
  const simWrap = el('section', { class: 'similar' }, el('div', { class: 'results-head' }, el('h2', { text: 'More like this' }), el('span', { class: 'muted', id: 'sim-info' })));
  view.append(simWrap);
  try {
    const sim = await api('/api/photos/' + p.id + '/similar?n=40');
    if (token !== state.renderToken) return;
    $('#sim-info').textContent = sim.results.length + ' photos · cutoff ' + sim.min_score.toFixed(2);
    if (!sim.results.length) simWrap.append(el('p', { class: 'muted', text: sim.notice || 'Nothing similar enough.' }));
    const grid = new Grid(simWrap, { rowHeight: 160, onOpen: () => rememberList(grid, 'photos like this one') });
    grid.add(sim.results);
  } catch (e) {
    simWrap.append(el('p', { class: 'error', text: e.message }));
  }
}

// ---- home -------------------------------------------------------------------------------

async function renderHome() {
  const token = state.renderToken;
  const st = state.status;
  if (st && st.photos === 0) {
    view.append(el('div', { class: 'welcome' },
      el('h1', { text: 'Your photos, found again.' }),
      el('p', { text: 'shoebox catalogs your folders and understands every picture with a model running on this computer. Nothing leaves the machine.' }),
      el('a', { class: 'button', href: '#/crawl' }, 'Add a folder')));
    return;
  }
  const head = el('div', { class: 'results-head' }, el('h1', { text: 'Rediscover' }),
    el('button', { class: 'ghost', type: 'button', onclick: () => render() }, 'Shuffle'));
  const sec = el('section', {}, head);
  view.append(sec);
  const otd = el('section', { class: 'otd' });
  view.append(otd);
  try {
    const [r, o] = await Promise.all([api('/api/rediscover?n=30'), api('/api/onthisday')]);
    if (token !== state.renderToken) return;
    const g = new Grid(sec, { onOpen: () => rememberList(g, 'Rediscover') });
    g.add(r.results);
    if (o.results.length) {
      otd.append(el('div', { class: 'results-head' }, el('h1', { text: 'On this day' }), el('span', { class: 'muted', text: fmtDate('2000-' + o.date).replace(/,? ?2000/, '') + ' in earlier years' })));
      const og = new Grid(otd, { rowHeight: 170, onOpen: () => rememberList(og, 'On this day') });
      og.add(o.results);
    }
  } catch (e) {
    sec.append(el('p', { class: 'error', text: e.message }));
  }
}

// ---- browse -----------------------------------------------------------------------------

async function renderBrowse() {
  const token = state.renderToken;
  const [t, f] = await Promise.all([api('/api/timeline'), api('/api/folders')]);
  if (token !== state.renderToken) return;
  const years = new Map();
  let undated = 0;
  for (const m of t.months) {
    if (!m.month) { undated = m.count; continue; }
    const y = m.month.slice(0, 4);
    if (!years.has(y)) years.set(y, []);
    years.get(y).push(m);
  }
  const tl = el('section', { class: 'timeline' }, el('h1', { text: 'Timeline' }));
  for (const [y, months] of years) {
    const total = months.reduce((a, m) => a + m.count, 0);
    const next = String(Number(y) + 1);
    tl.append(el('div', { class: 'year' },
      el('a', { class: 'year-label', href: searchHash('', { after: y + '-01-01', before: next + '-01-01' }) }, el('strong', { text: y }), el('span', { class: 'muted', text: ' ' + total })),
      el('div', { class: 'months' }, months.slice().reverse().map(m => {
        const [yy, mm] = m.month.split('-').map(Number);
        const end = mm === 12 ? (yy + 1) + '-01-01' : yy + '-' + String(mm + 1).padStart(2, '0') + '-01';
        return el('a', { class: 'chip', href: searchHash('', { after: m.month + '-01', before: end }) }, monthName(m.month) + ' ', el('span', { class: 'muted', text: String(m.count) }));
      }))));
  }
  if (undated) tl.append(el('p', { class: 'muted', text: undated + ' undated photos' }));
  const fl = el('section', { class: 'folders' }, el('h1', { text: 'Folders' }),
    el('ul', {}, f.folders.map(x => el('li', {}, el('a', { href: searchHash('', { in: x.path }), title: x.path }, el('span', { class: 'path', text: x.path }), el('span', { class: 'muted', text: String(x.count) }))))));
  view.append(el('div', { class: 'browse' }, tl, fl));
}

// ---- duplicates ---------------------------------------------------------------------------

async function renderDupes() {
  const token = state.renderToken;
  const d = await api('/api/dupes');
  if (token !== state.renderToken) return;
  const card = (r) => el('a', { class: 'dupe', href: '#/photo/' + r.id },
    el('img', { src: '/thumb/' + r.id, alt: '', loading: 'lazy' }),
    el('span', { class: 'small', text: r.width + '×' + r.height + ' ' + (r.format || '') }),
    el('span', { class: 'small muted path', text: r.path, title: r.paths.join('\n') }));
  view.append(el('div', { class: 'results-head' }, el('h1', { text: 'Duplicates' }), el('span', { class: 'muted', text: 'read-only: nothing is moved or deleted' })));
  const ex = el('section', {}, el('h2', { text: 'Exact copies (same content, several files)' }));
  if (!d.exact.length) ex.append(el('p', { class: 'muted', text: 'None.' }));
  for (const r of d.exact) {
    ex.append(el('div', { class: 'dupe-group' }, el('a', { href: '#/photo/' + r.id }, el('img', { src: '/thumb/' + r.id, alt: '', loading: 'lazy' })),
      el('ul', { class: 'paths' }, r.paths.map(x => el('li', { text: x })))));
  }
  const near = el('section', {}, el('h2', { text: 'Near duplicates (similarity ≥ ' + d.threshold + ')' }));
  if (!d.near.length) near.append(el('p', { class: 'muted', text: 'None.' }));
  for (const g of d.near) near.append(el('div', { class: 'dupe-row' }, g.map(card)));
  view.append(ex, near);
}

// ---- crawl ------------------------------------------------------------------------------

function renderCrawl() {
  const input = el('input', { id: 'crawl-path', type: 'text', placeholder: '/home/you/Pictures', 'aria-label': 'Folder', spellcheck: 'false' });
  const msg = el('p', { class: 'error', id: 'crawl-msg' });
  const form = el('form', { class: 'crawl-form', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.textContent = '';
    const path = input.value.trim();
    if (!path) { msg.textContent = 'Type the path of a folder.'; return; }
    try {
      await api('/api/index', { method: 'POST', body: JSON.stringify({ path }) });
      localStorage.setItem('shoebox.lastCrawl', path);
      pollStatus(true);
    } catch (e) { msg.textContent = e.message; }
  } }, input, el('button', { id: 'crawl-start', type: 'submit' }, 'Crawl'));
  input.value = localStorage.getItem('shoebox.lastCrawl') || '';
  view.append(el('section', { class: 'crawl' },
    el('h1', { text: 'Crawl a folder' }),
    el('p', { class: 'muted', text: 'shoebox reads the photos under this folder (read-only), makes thumbnails and embeddings, and keeps everything in its catalog. Run it again any time: unchanged files cost nothing.' }),
    form, msg, el('div', { id: 'crawl-progress' }), el('div', { id: 'library-stats' })));
  updateCrawlView();
}

function updateCrawlView() {
  const box = $('#crawl-progress');
  if (!box || !state.status) return;
  const st = state.status, c = st.crawl;
  box.replaceChildren();
  if (c && c.runs) {
    const pct = c.total ? Math.min(100, 100 * c.done / c.total) : 0;
    const bar = el('div', { class: 'bar' + (c.running && !c.total ? ' indeterminate' : '') }, el('div', { class: 'fill' }));
    bar.firstChild.style.width = (c.running ? pct : 100) + '%';
    const stageName = { start: 'starting', scan: 'scanning folders', index: 'hashing, thumbnails, embedding' }[c.stage] || c.stage;
    box.append(el('div', { class: 'progress card', id: 'crawl-state', 'data-running': c.running ? '1' : '0', 'data-result': c.result || '' },
      el('div', { class: 'row' }, el('strong', { text: c.running ? 'Crawling' : c.result === 'ok' ? 'Done' : c.result === 'stopped' ? 'Stopped' : 'Failed' }),
        el('span', { class: 'muted path', text: c.root })),
      bar,
      el('div', { class: 'row stats' },
        el('span', {}, 'Stage: ', el('b', { text: c.running ? stageName : 'finished' })),
        el('span', {}, 'Items: ', el('b', { text: c.done + (c.total ? ' / ' + c.total : '') })),
        c.running ? el('span', {}, 'Rate: ', el('b', { text: c.rate ? c.rate.toFixed(1) + '/s' : '–' })) : null,
        c.running ? el('span', {}, 'ETA: ', el('b', { text: fmtDuration(c.eta_s) })) : null,
        el('span', {}, 'Elapsed: ', el('b', { text: fmtDuration(c.elapsed_s) })),
        el('span', {}, 'Errors: ', el('b', { text: String(c.stats ? c.stats.failed : st.failed) }))),
      c.stats ? el('p', { class: 'muted small', text: c.stats.seen + ' files seen, ' + c.stats.new_photos + ' new photos, ' + c.stats.embedded + ' embedded, ' + c.stats.failed + ' failed' }) : null,
      c.error ? el('p', { class: 'error', text: c.error }) : null,
      c.running ? el('button', { class: 'ghost', type: 'button', onclick: () => api('/api/index/stop', { method: 'POST' }) }, 'Stop') : null,
      !c.running && c.result === 'ok' ? el('a', { class: 'button', href: '#/' }, 'See your photos') : null));
  }
  const lib = $('#library-stats');
  const stages = Object.entries(st.stages || {});
  lib.replaceChildren(el('div', { class: 'card' },
    el('h2', { text: 'Library' }),
    el('div', { class: 'row stats' },
      el('span', {}, el('b', { text: String(st.photos) }), ' photos'),
      el('span', {}, el('b', { text: String(st.files) }), ' files'),
      el('span', {}, el('b', { text: String(st.duplicates) }), ' duplicate copies'),
      el('span', {}, el('b', { text: String(st.failed) }), ' failed'),
      el('span', {}, el('b', { text: String(st.vectors) }), ' searchable')),
    stages.length ? el('table', { class: 'stages' }, el('tr', {}, el('th', { text: 'stage' }), el('th', { text: 'done' }), el('th', { text: 'pending' }), el('th', { text: 'failed' })),
      stages.map(([k, v]) => el('tr', {}, el('td', { text: k.replace(/@.*/, '') }), el('td', { text: v.done }), el('td', { text: v.pending }), el('td', { text: v.failed })))) : null,
    el('p', { class: 'muted small', text: st.model ? 'Model: ' + st.model + (st.text_search ? '' : ' (text search unavailable)') : 'No model: photos are cataloged without embeddings (start with shoebox --model DIR serve).' })));
}

// ---- status polling -----------------------------------------------------------------------

async function pollStatus(soon) {
  clearTimeout(state.pollTimer);
  try {
    const st = await api('/api/status');
    const wasRunning = state.status && state.status.crawl && state.status.crawl.running;
    state.status = st;
    const pill = $('#status-pill');
    if (st.crawl.running) {
      const pct = st.crawl.total ? Math.round(100 * st.crawl.done / st.crawl.total) + '%' : st.crawl.done;
      pill.textContent = 'Crawling · ' + pct;
      pill.classList.add('busy');
    } else {
      pill.textContent = st.photos + ' photos';
      pill.classList.remove('busy');
    }
    if (wasRunning && !st.crawl.running) facetsLoaded = false;
    updateCrawlView();
  } catch (e) { /* the server may be restarting: try again */ }
  const running = state.status && state.status.crawl && state.status.crawl.running;
  state.pollTimer = setTimeout(pollStatus, soon || running ? 700 : 5000);
}

// ---- routing ----------------------------------------------------------------------------

let currentGrid = null;

async function render() {
  state.renderToken++;
  if (currentGrid) { if (currentGrid.stop) currentGrid.stop(); currentGrid.destroy(); currentGrid = null; }
  const { path, params } = parseHash();
  view.replaceChildren();
  const section = path.split('/')[1] || 'home';
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === section);
  document.body.dataset.route = section;
  const m = path.match(/^\/photo\/(\d+)$/);
  try {
    if (m) {
      await renderPhoto(Number(m[1]));
      window.scrollTo(0, 0);
    } else if (path === '/search') {
      currentGrid = renderSearch(params);
    } else if (path === '/browse') {
      await renderBrowse();
    } else if (path === '/dupes') {
      await renderDupes();
    } else if (path === '/crawl') {
      renderCrawl();
    } else {
      if (!state.status) await pollStatus();
      await renderHome();
    }
  } catch (e) {
    view.append(el('p', { class: 'error', text: e.message }));
  }
  if (path !== '/search') $('#filters-toggle').textContent = 'Filters';
}

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

$('#search-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  go(searchHash($('#q').value.trim(), currentFilters()));
});
$('#filters-toggle').addEventListener('click', () => {
  const f = $('#filters');
  f.hidden = !f.hidden;
  $('#filters-toggle').setAttribute('aria-expanded', String(!f.hidden));
  if (!f.hidden) loadFacets();
});
$('#f-apply').addEventListener('click', () => go(searchHash($('#q').value.trim(), currentFilters())));
$('#f-clear').addEventListener('click', () => {
  for (const [, id] of FILTERS) $('#' + id).value = '';
  go(searchHash($('#q').value.trim(), {}));
});

document.addEventListener('keydown', (ev) => {
  const t = ev.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA')) {
    if (ev.key === 'Escape') t.blur();
    return;
  }
  if (ev.key === '/' ) { ev.preventDefault(); $('#q').focus(); return; }
  if (document.body.dataset.route !== 'photo') return;
  if (ev.key === 'ArrowLeft') { const a = $('.nav-arrow.left'); if (a) location.hash = a.getAttribute('href'); }
  else if (ev.key === 'ArrowRight') { const a = $('.nav-arrow.right'); if (a) location.hash = a.getAttribute('href'); }
  else if (ev.key === 'Escape') { location.hash = state.listBack; }
});

window.addEventListener('hashchange', render);
pollStatus().then(render);
