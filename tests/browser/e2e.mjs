// End to end in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core; no
// browser download): start `shoebox serve` on a free port with a fresh catalog, crawl a folder
// from the page, watch the progress finish, search, open a photo, go to a similar one, use the
// keyboard, visit home/browse/duplicates, and check that the page logged no console error.
// Screenshots go to $SHOEBOX_SHOTS (the build folder).
//
// env: SHOEBOX_BIN, SHOEBOX_TESTDATA (tests/data), SHOEBOX_TMP (scratch), SHOEBOX_SHOTS,
//      CHROMIUM (default /usr/bin/chromium)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.SHOEBOX_BIN;
const DATA = process.env.SHOEBOX_TESTDATA;
const TMP = process.env.SHOEBOX_TMP;
const SHOTS = process.env.SHOEBOX_SHOTS || path.join(TMP, 'shots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const REPO = path.resolve(DATA, '../..');

let failures = 0, checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) { failures++; console.error('FAIL: ' + what); }
}

fs.rmSync(TMP, { recursive: true, force: true });
fs.mkdirSync(SHOTS, { recursive: true });
const lib = path.join(TMP, 'lib');
for (const d of ['orig', 'copies']) fs.mkdirSync(path.join(lib, d), { recursive: true });
for (const f of fs.readdirSync(path.join(REPO, 'samples'))) {
  if (/\.(jpg|png)$/.test(f)) fs.copyFileSync(path.join(REPO, 'samples', f), path.join(lib, 'orig', f));
}
fs.copyFileSync(path.join(DATA, 'images/Nikon_D70.jpg'), path.join(lib, 'orig/nikon.jpg'));
fs.copyFileSync(path.join(DATA, 'library/exiftool_FujiS1Pro_gps_stub.jpg'), path.join(lib, 'orig/gps.jpg'));
fs.copyFileSync(path.join(DATA, 'images/Nikon_D70.jpg'), path.join(lib, 'copies/nikon_copy.jpg'));

// the server
const server = spawn(BIN, ['--db', path.join(TMP, 'cat/catalog.db'), '--model', path.join(DATA, 'models/tiny_b32'),
  'serve', '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XDG_DATA_HOME: path.join(TMP, 'xdg') } });
let serverLog = '';
const port = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('server did not start: ' + serverLog)), 15000);
  server.stderr.on('data', (d) => {
    serverLog += d;
    const m = serverLog.match(/http:\/\/127\.0\.0\.1:(\d+)/);
    if (m) { clearTimeout(t); resolve(Number(m[1])); }
  });
  server.on('exit', (c) => reject(new Error('server exited ' + c + ': ' + serverLog)));
});
const B = `http://127.0.0.1:${port}`;

const userDataDir = fs.mkdtempSync(path.join(TMP, 'chromium-profile-'));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1360, height: 860 },
});
const consoleErrors = [];
const page = ctx.pages()[0] || await ctx.newPage();
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));
page.on('response', (r) => { if (r.status() >= 400) consoleErrors.push(r.status() + ' ' + r.url()); });
const offsite = [];
page.on('request', (r) => { if (!r.url().startsWith(B) && !r.url().startsWith('data:')) offsite.push(r.url()); });
const shot = (name) => page.screenshot({ path: path.join(SHOTS, name + '.png') });

async function allImagesLoaded(sel) {
  return page.$$eval(sel, (imgs) => imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0));
}

try {
  // 1. an empty library: the welcome page
  await page.goto(B + '/');
  await page.waitForSelector('.welcome');
  await shot('01-welcome');

  // 2. crawl a folder from the page and watch it finish
  await page.click('a[data-nav="crawl"]');
  await page.waitForSelector('#crawl-path');
  await page.fill('#crawl-path', lib);
  await page.click('#crawl-start');
  await page.waitForSelector('#crawl-state', { timeout: 10000 });
  await page.waitForSelector('#crawl-state[data-running="0"]', { timeout: 120000 });
  check(await page.getAttribute('#crawl-state', 'data-result') === 'ok', 'crawl result ok');
  await page.waitForFunction(() => /8 photos/.test(document.querySelector('#status-pill').textContent), null, { timeout: 10000 });
  const stats = await page.textContent('#library-stats');
  check(/8\s*photos/.test(stats) && /8\s*searchable/.test(stats), 'library stats: ' + stats);
  await shot('02-crawl-done');

  // 3. search: the tiny random model scores text low, so ask for every match
  await page.click('#filters-toggle');
  await page.selectOption('#f-min', '-1');
  await page.fill('#q', 'fuji from a plane');
  await page.press('#q', 'Enter');
  await page.waitForFunction(() => location.hash.startsWith('#/search?q=fuji'));
  await page.waitForSelector('.grid .tile img');
  await page.waitForFunction(() => [...document.querySelectorAll('.grid .tile img')].every((i) => i.complete && i.naturalWidth > 0));
  const n = await page.$$eval('.grid .tile', (t) => t.length);
  check(n === 8, 'search shows every photo with no cutoff, got ' + n);
  check(/no relevance cutoff/.test(await page.textContent('#results-info')), 'cutoff shown');
  const widths = await page.$$eval('.grid .tile', (t) => t.map((x) => x.getBoundingClientRect().width));
  check(widths.every((w) => w > 30), 'tiles laid out: ' + widths.join(','));
  await page.click('#filters-toggle');
  await shot('03-search');

  // 4. open a photo: preview, metadata, more like this
  await page.click('.grid .tile >> nth=0');
  await page.waitForFunction(() => /^#\/photo\/\d+$/.test(location.hash));
  await page.waitForSelector('.preview');
  await page.waitForFunction(() => { const i = document.querySelector('.preview'); return i && i.complete && i.naturalWidth > 0; });
  const firstHash = await page.evaluate(() => location.hash);
  check(await page.$('.meta') !== null, 'metadata shown');
  await page.waitForSelector('.similar .tile img');
  check(await allImagesLoaded('.similar .tile img'), 'similar thumbnails load');
  await shot('04-photo');

  // 5. keyboard: right arrow goes to the next search result, Esc back to the results
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction((h) => location.hash !== h, firstHash);
  await page.waitForSelector('.preview');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => location.hash.startsWith('#/search'));
  await page.waitForSelector('.grid .tile');

  // 6. follow similar photos from photo to photo
  await page.click('.grid .tile >> nth=0');
  await page.waitForSelector('.similar .tile');
  const before = await page.evaluate(() => location.hash);
  await page.click('.similar .tile >> nth=0');
  await page.waitForFunction((h) => location.hash !== h && /^#\/photo\/\d+$/.test(location.hash), before);
  await page.waitForFunction(() => { const i = document.querySelector('.preview'); return i && i.complete && i.naturalWidth > 0; });
  await page.waitForSelector('.similar .tile');
  const after = await page.evaluate(() => location.hash);
  await page.click('.similar .tile >> nth=0');
  await page.waitForFunction((h) => location.hash !== h, after);
  await page.waitForSelector('.preview');
  await shot('05-similar');

  // 7. deep link to a photo, in a fresh page load
  const deep = await page.evaluate(() => location.href);
  await page.goto(deep);
  await page.waitForFunction(() => { const i = document.querySelector('.preview'); return i && i.complete && i.naturalWidth > 0; });
  check(await page.$('.side h1') !== null, 'deep link renders the photo');

  // 8. home: rediscover, browse, duplicates
  await page.click('a[data-nav="home"]');
  await page.waitForSelector('.grid .tile img');
  await page.waitForFunction(() => [...document.querySelectorAll('.grid .tile img')].every((i) => i.complete && i.naturalWidth > 0));
  check((await page.$$('.grid .tile')).length >= 8, 'rediscover shows the library');
  await shot('06-home');
  await page.click('a[data-nav="browse"]');
  await page.waitForSelector('.timeline .year');
  check(/2008/.test(await page.textContent('.timeline')), 'timeline has 2008');
  check(/copies/.test(await page.textContent('.folders')), 'folders listed');
  await shot('07-browse');
  await page.click('.timeline .chip >> text=Mar');
  await page.waitForSelector('.grid .tile');
  check((await page.$$('.grid .tile')).length === 1, 'one photo in March 2008');
  await page.click('a[data-nav="dupes"]');
  await page.waitForSelector('.dupe-group');
  check(/nikon_copy\.jpg/.test(await page.textContent('.dupe-group')), 'exact duplicate listed');
  await shot('08-dupes');

  // 9. a phone-sized window
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(B + '/#/search?min_score=-1&q=a%20rocket');
  await page.waitForSelector('.grid .tile img');
  await page.waitForFunction(() => [...document.querySelectorAll('.grid .tile img')].every((i) => i.complete && i.naturalWidth > 0));
  await shot('09-mobile-search');
} catch (e) {
  failures++;
  console.error('FAIL: ' + e.stack);
  await shot('99-failure').catch(() => {});
} finally {
  await ctx.close();
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
}
check(consoleErrors.length === 0, 'no console errors: ' + JSON.stringify(consoleErrors));
check(offsite.length === 0, 'nothing fetched from elsewhere: ' + JSON.stringify(offsite));
console.error(`screenshots in ${SHOTS}`);
console.error(`${checks - failures + (failures ? 0 : 0)} passed checks, ${failures} failed`);
process.exit(failures ? 1 : 0);
