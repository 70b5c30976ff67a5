// load.mjs - a load test of `shoebox serve` on loopback: C concurrent clients (default 50)
// for D seconds (default 20), each looping over a mix of text searches (with and without
// filters), similar-photo queries, photo metadata and thumbnails (256 and 1024 px, half of
// them revalidated with If-None-Match). Reports requests/s, thumbnails/s, p50/p99 latency
// per kind and the error count; exits 1 on any error.
//
// usage: node load.mjs BASE_URL [clients] [seconds]
import http from 'node:http';

const base = process.argv[2];
const clients = Number(process.argv[3] || 50);
const seconds = Number(process.argv[4] || 20);
if (!base) { console.error('usage: node load.mjs BASE_URL [clients] [seconds]'); process.exit(2); }
const agent = new http.Agent({ keepAlive: true, maxSockets: clients });

function get(path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(base + path, { agent, headers }, (res) => {
      let n = 0;
      res.on('data', (c) => { n += c.length; });
      res.on('end', () => resolve({ status: res.statusCode, bytes: n, etag: res.headers.etag }));
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('timeout')));
  });
}

const words = ['a photo of a cat', 'fuji from a plane', 'rocket at night', 'coffee', 'stars', 'hats on a wall',
  'waterfall + river - night', 'a dog on the beach', 'sunset', 'mountains'];
const status = JSON.parse(await new Promise((res, rej) => http.get(base + '/api/status', (r) => { let s = ''; r.on('data', (c) => s += c); r.on('end', () => res(s)); }).on('error', rej)));
const ids = [];
{
  const r = await new Promise((res, rej) => http.get(base + '/api/search?n=500', (x) => { let s = ''; x.on('data', (c) => s += c); x.on('end', () => res(JSON.parse(s))); }).on('error', rej));
  for (const p of r.results) ids.push(p.id);
}
if (!ids.length) { console.error('the catalog has no photos'); process.exit(2); }
console.error(`${status.photos} photos, ${status.vectors} vectors; ${clients} clients for ${seconds} s`);

const lat = {}; // kind -> [ms]
let errors = 0, requests = 0, thumbs = 0, bytes = 0;
const errorSamples = [];
const etags = new Map();
const pick = (a) => a[Math.floor(Math.random() * a.length)];
const deadline = Date.now() + seconds * 1000;

async function one() {
  const r = Math.random();
  let kind, path, headers = {};
  const id = pick(ids);
  if (r < 0.30) {
    kind = 'search';
    path = '/api/search?n=60&min_score=-1&q=' + encodeURIComponent(pick(words));
    if (Math.random() < 0.3) path += '&after=2000-01-01&format=jpeg';
  } else if (r < 0.38) {
    kind = 'similar';
    path = `/api/photos/${id}/similar?n=40`;
  } else if (r < 0.45) {
    kind = 'photo';
    path = `/api/photos/${id}`;
  } else {
    const size = Math.random() < 0.8 ? 256 : 1024;
    kind = 'thumb';
    path = `/thumb/${id}?size=${size}`;
    const e = etags.get(path);
    if (e && Math.random() < 0.5) { headers['If-None-Match'] = e; kind = 'thumb304'; }
  }
  const t0 = performance.now();
  try {
    const res = await get(path, headers);
    const ms = performance.now() - t0;
    const ok = kind === 'thumb304' ? res.status === 304 : res.status === 200;
    if (!ok) { errors++; if (errorSamples.length < 5) errorSamples.push(res.status + ' ' + path); }
    if (kind.startsWith('thumb')) { thumbs++; if (res.etag) etags.set(path, res.etag); }
    bytes += res.bytes;
    (lat[kind] ||= []).push(ms);
    (lat.all ||= []).push(ms);
  } catch (e) {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(e.message + ' ' + path);
  }
  requests++;
}

async function client() {
  while (Date.now() < deadline) await one();
}
const t0 = Date.now();
await Promise.all(Array.from({ length: clients }, client));
const dt = (Date.now() - t0) / 1000;
agent.destroy();

const q = (a, p) => { const s = a.slice().sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
console.log(`requests ${requests} in ${dt.toFixed(1)} s: ${(requests / dt).toFixed(0)}/s, thumbnails ${(thumbs / dt).toFixed(0)}/s, ${(bytes / dt / 1048576).toFixed(1)} MiB/s, errors ${errors}`);
console.log('kind        count    p50 ms   p99 ms');
for (const [k, a] of Object.entries(lat)) {
  console.log(`${k.padEnd(10)} ${String(a.length).padStart(6)} ${q(a, 0.5).toFixed(1).padStart(9)} ${q(a, 0.99).toFixed(1).padStart(8)}`);
}
if (errors) console.log('errors, e.g.: ' + errorSamples.join('; '));
process.exit(errors ? 1 : 0);
