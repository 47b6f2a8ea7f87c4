// The web page at / in headless Chromium (Debian's chromium, driven by puppeteer-core,
// pinned in package.json): it loads under its Content-Security-Policy without errors,
// lists the samplers, generates with live progress and step previews and shows the image with its
// parameters, cancels a long job, and fits a phone's width. Saves a screenshot.
// Usage: CS_URL=http://127.0.0.1:PORT [CS_KEY=key] [CS_SCREENSHOT=out.png] [CS_PROMPT=...]
//        [CS_CHROMIUM=/usr/bin/chromium] node web_test.mjs
import puppeteer from 'puppeteer-core';

const base = process.env.CS_URL, key = process.env.CS_KEY || '';
let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'ok' : 'FAIL'}: ${name}${detail ? ' (' + detail + ')' : ''}`);
}

const browser = await puppeteer.launch({
  executablePath: process.env.CS_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 760 });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  // Every text #status shows, in order (the SSE events pass quickly on a tiny model).
  await page.evaluateOnNewDocument((k) => {
    if (k) localStorage.setItem('cfgserve-key', k); // what the page's key field saves
    window.__statuses = [];
    document.addEventListener('DOMContentLoaded', () => {
      const s = document.getElementById('status');
      new MutationObserver(() => window.__statuses.push(s.textContent))
        .observe(s, { childList: true, characterData: true, subtree: true });
    });
  }, key);
  const res = await page.goto(base + '/', { waitUntil: 'load' });
  check('GET / is 200 with a Content-Security-Policy',
    res.status() === 200 && /default-src 'none'/.test(res.headers()['content-security-policy'] || ''));
  await page.waitForFunction(() => document.querySelectorAll('#sampler option').length > 1, { timeout: 15000 });
  const samplers = await page.$$eval('#sampler option', (o) => o.map((x) => x.value));
  check('the sampler list comes from /v1/models', samplers.includes('euler'), samplers.join(','));

  // Generate: progress events, then the images with their parameters.
  await page.$eval('#prompt', (p) => { p.value = ''; });
  await page.type('#prompt', process.env.CS_PROMPT || 'a red circle on a blue background');
  await page.$eval('#steps', (s) => { s.value = '12'; });
  const count = process.env.CS_COUNT || '2';
  await page.$eval('#count', (c, n) => { c.value = n; }, count);
  await page.$eval('#seed', (s) => { s.value = '42'; });
  // Step previews (every 5 steps: after steps 5 and 10 of 12) land in a preview card.
  await page.evaluate(() => {
    window.__previews = 0;
    new MutationObserver(() => {
      const i = document.querySelector('#gallery .preview img');
      if (i && i.src.startsWith('data:image/png;base64,') && i.src !== window.__lastPreview) {
        window.__lastPreview = i.src;
        window.__previews++;
      }
    }).observe(document.getElementById('gallery'),
      { subtree: true, childList: true, attributes: true, attributeFilter: ['src'] });
  });
  await page.click('#go');
  await page.waitForFunction(() => /^done|^error|^cancel/.test(document.getElementById('status').textContent),
    { timeout: 120000 });
  const statuses = await page.evaluate(() => window.__statuses);
  const status = await page.$eval('#status', (s) => s.textContent);
  check('generation: queued/started and step progress events were shown, then done',
    statuses.some((s) => /^queued|^started/.test(s)) && statuses.some((s) => /^step \d+ \/ \d+/.test(s)) && /^done/.test(status),
    statuses.slice(0, 4).join(' | ') + ' … ' + status);
  const previews = await page.evaluate(() => window.__previews);
  check('step previews were shown while it ran, then replaced by the images',
    previews >= 1 && (await page.$$('#gallery .preview')).length === 0, `${previews} preview(s)`);
  const cards = await page.$$eval('#gallery .card img', (imgs) =>
    imgs.map((i) => ({ ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth })));
  const text = await page.$eval('#gallery .card pre', (p) => p.textContent).catch(() => '');
  check('the images appear in the gallery with their parameters',
    cards.length === Number(count) && cards.every((c) => c.ok) && /seed 42/.test(text),
    `${cards.length} cards, "${text.replace(/\n/g, ' / ')}"`);
  if (process.env.CS_SCREENSHOT) {
    await page.screenshot({ path: process.env.CS_SCREENSHOT });
    console.log('screenshot: ' + process.env.CS_SCREENSHOT);
  }

  // A long job, cancelled after its first progress event.
  const maxSteps = await page.$eval('#steps', (s) => s.max);
  await page.$eval('#steps', (s, m) => { s.value = m; }, maxSteps);
  await page.$eval('#count', (c) => { c.value = '4'; });
  await page.evaluate(() => { window.__statuses = []; });
  await page.click('#go');
  await page.waitForFunction(() => /^step |^error|^done/.test(document.getElementById('status').textContent),
    { timeout: 60000 });
  await page.click('#cancel');
  await page.waitForFunction(() => /^cancelled|^done|^error/.test(document.getElementById('status').textContent),
    { timeout: 60000 });
  const end = await page.$eval('#status', (s) => s.textContent);
  const cardsAfter = await page.$$eval('#gallery .card', (c) => c.length);
  check('a long job is cancelled from the page', end === 'cancelled' && cardsAfter === cards.length,
    `${maxSteps} steps: "${end}"`);

  // A phone: no horizontal scrolling.
  await page.setViewport({ width: 390, height: 844, isMobile: true });
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
  check('the page fits a phone screen (390 px)', fits);
  check('no console errors or CSP violations', problems.length === 0, problems.join(' | '));
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
