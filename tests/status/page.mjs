// tests/status/page.mjs - the browser side of test_status_page: the
// status page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core from npm, installed into the build tree by npm ci), read
// as a user sees it.
//
//   BURSAR_NODE_MODULES=DIR/node_modules node page.mjs URL [token]
//
// Loads URL and waits until the page has drawn live data (body
// data-ready; with "token": until it asks for a token), then answers
// commands, one per line on stdin, with one JSON line on stdout:
//   snap         what the page shows, after two more refreshes (so that
//                it reflects the daemon's state when the command came)
//   down         the same once the page says the daemon is unreachable
//   token T      types T into the page's token form, then what the page
//                shows once it drew live data
//   shot FILE    a PNG screenshot of the whole page into FILE
//   quit         closes the browser and exits 0
// Every answer carries "errors": the page's console errors and uncaught
// exceptions (a Content-Security-Policy violation is one), and
// "fetches": the status.json requests so far ("full", or "since=N").
// Anything that goes wrong is {"error": "..."} and exit 1: the C side
// fails with it.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';

const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
function die(msg) {
  say({ error: msg });
  process.exit(1);
}

const url = process.argv[2];
const waitToken = process.argv[3] === 'token';
if (!url) die('usage: node page.mjs URL');
const modules = process.env.BURSAR_NODE_MODULES;
if (!modules || !fs.existsSync(path.join(modules, 'playwright-core')))
  die(`playwright-core is not installed in ${modules || '$BURSAR_NODE_MODULES (unset)'}: ` +
      'run the test test_status_npm_ci first (ctest -R test_status)');
const chromiumPath = process.env.BURSAR_CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(chromiumPath))
  die(`chromium is missing: expected ${chromiumPath}; install Debian's chromium ` +
      '(scripts/deps.sh does)');
const { chromium } = createRequire(path.join(modules, 'x.js'))('playwright-core');

const errors = [];
let browser;
try {
  browser = await chromium.launch({
    executablePath: chromiumPath,
    // root (CI containers) needs --no-sandbox; small /dev/shm in containers
    args: ['--disable-dev-shm-usage', ...(process.getuid() === 0 ? ['--no-sandbox'] : [])],
  });
} catch (e) {
  die(`cannot start ${chromiumPath}: ${e.message.split('\n')[0]}`);
}
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
page.on('pageerror', (e) => errors.push(String(e)));
const fetches = [];
page.on('request', (r) => {
  const u = new URL(r.url());
  if (u.pathname.endsWith('/status.json'))
    fetches.push(u.search ? u.search.slice(1) : 'full');
});

// What the page shows, read from its DOM as text and SVG geometry.
function read() {
  const $ = (s, r = document) => r.querySelector(s);
  const all = (s, r = document) => [...r.querySelectorAll(s)];
  const text = (s, r) => { const e = $(s, r); return e ? e.textContent : null; };
  const num = (e, a) => Number(e.getAttribute(a));
  const body = document.body;
  const al = $('#alert');
  const figures = {};
  for (const k of ['limit', 'spent', 'reserved', 'remaining', 'mu', 'target', 'decisions', 'window'])
    figures[k] = text('#' + k);
  const spent = $('path.spent');
  return {
    state: body.dataset.state || null,
    updates: Number(body.dataset.updates || 0),
    updated: text('#updated'),
    alert: al && !al.hidden ? al.textContent : null,
    stale: body.classList.contains('stale'),
    auth: !$('#auth').hidden,
    authWhy: text('#auth-why'),
    hash: location.hash,
    figures,
    spend: {
      points: spent ? Number(spent.dataset.points) : null,
      dots: all('circle.spent-dot').length,
      plan: !!$('path.plan'),
      pacer: !!$('path.pacer'),
    },
    shares: all('#shares > div').map((d) => ({
      bucket: d.dataset.bucket,
      intervals: Number($('svg', d).dataset.intervals),
      rects: Object.fromEntries(all('path[data-model]', d).map((p) =>
        [p.dataset.model, ((p.getAttribute('d') || '').match(/M/g) || []).length])),
      legend: Object.fromEntries(all('.legend span', d).map((s) =>
        [s.dataset.model, s.textContent.slice(s.dataset.model.length + 1)])),
    })),
    arms: all('#arms table').map((t) => ({
      bucket: t.dataset.bucket,
      rows: all('tbody tr', t).map((r) => {
        const w = all('line.whisker', r);
        return {
          model: r.dataset.model,
          mean: text('.mean', r),
          interval: text('.interval', r),
          pulls: text('.pulls', r),
          share: text('.share', r),
          latency: text('.latency', r),
          breach: $('.latency', r).classList.contains('breach'),
          slo: text('.slo', r),
          dot: $('circle.dot', r) ? num($('circle.dot', r), 'cx') : null,
          whisker: w.length ? [num(w[0], 'x1'), num(w[0], 'x2')] : null,
        };
      }),
    })),
    health: all('#health tbody tr').map((r) => ({
      model: r.dataset.model,
      cls: r.className,
      state: text('.state', r),
      failures: text('.failures', r),
      errors: text('.errors', r),
      cooldown: text('.until', r),
    })),
  };
}

async function snap(pred, what, ms) {
  try {
    await page.waitForFunction(pred.fn, pred.arg, { timeout: ms, polling: 50 });
  } catch (e) {
    const seen = await page.evaluate(read).catch(() => null);
    die(`${what} within ${ms} ms; the page shows ${JSON.stringify(seen)}; ` +
        `its errors: ${JSON.stringify(errors)}`);
  }
  return { ...(await page.evaluate(read)), errors, fetches };
}

try {
  await page.goto(url, { waitUntil: 'load', timeout: 20000 });
} catch (e) {
  die(`cannot load ${url}: ${e.message.split('\n')[0]}`);
}
if (waitToken)
  say(await snap({ fn: () => document.body.dataset.state === 'token' }, 'the page asked for no token', 20000));
else
  say(await snap({ fn: () => document.body.dataset.ready === '1' }, 'the page drew no live data', 20000));

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const [cmd, arg] = line.trim().split(/\s+/, 2);
  if (cmd === 'snap') {
    const n = await page.evaluate(() => Number(document.body.dataset.updates || 0));
    say(await snap({ fn: (k) => Number(document.body.dataset.updates || 0) >= k, arg: n + 2 },
                   'the page did not refresh twice', 20000));
  } else if (cmd === 'down') {
    say(await snap({ fn: () => document.body.dataset.state === 'unreachable' },
                   'the page did not report the daemon unreachable', 20000));
  } else if (cmd === 'token' && arg) {
    await page.fill('#token', arg);
    await page.click('#auth button');
    say(await snap({ fn: () => document.body.dataset.ready === '1' },
                   'the page drew no live data after the token', 20000));
  } else if (cmd === 'shot' && arg) {
    await page.screenshot({ path: arg, fullPage: true });
    say({ shot: arg, bytes: fs.statSync(arg).size, errors });
  } else if (cmd === 'quit') {
    break;
  } else {
    die(`unknown command ${JSON.stringify(line)}`);
  }
}
await browser.close();
process.exit(0);
