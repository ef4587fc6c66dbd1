// tests/gateway/lib.mjs - the real parts for the gateway's Node tests:
// bursar-mock-provider, bursard and bursar-gateway started on loopback in
// a directory of the test, the bursar CLI's export, and the mock's
// /stats. Programs come from $BURSAR_BIN_DIR (ctest sets it); a program
// that is missing throws, naming the path it was expected at, so that the
// test fails (a skipped integration test would count as passed).
// Everything started here is killed when the test process exits.
import { spawn, execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function bin(name) {
  const dir = process.env.BURSAR_BIN_DIR;
  if (!dir)
    throw new Error(
      'BURSAR_BIN_DIR is not set: ctest sets it to the bin/ directory of a build');
  const p = path.join(dir, name);
  try {
    fs.accessSync(p, fs.constants.X_OK);
    if (!fs.statSync(p).isFile()) throw new Error('not a file');
  } catch {
    throw new Error(`${name} is missing: expected an executable at ${p} ` +
                    '(build it, or set BURSAR_BIN_DIR to the bin/ directory of a build)');
  }
  return p;
}

// A directory of the test, removed by cleanup() unless
// BURSAR_KEEP_TEST_DIRS is set (then its path is printed).
export function tmpdir() {
  return fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'bursar-gw-'));
}

const live = new Set();
process.on('exit', () => {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export function logTail(file, n = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

// Starts prog with args: stdout a pipe, stderr appended to log. The
// child's `exited` is a promise of {code, signal}.
function start(prog, args, log, env) {
  const fd = fs.openSync(log, 'a');
  const child = spawn(prog, args, {
    stdio: ['ignore', 'pipe', fd],
    env: { ...process.env, ...(env || {}) },
  });
  fs.closeSync(fd);
  live.add(child);
  child.log = log;
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  return child;
}

// The first line the child prints on stdout (its port); fails when it
// exits first or stays silent for ms. Later output is read and dropped.
function firstLine(child, what, ms = 20000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    const fail = (msg) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${msg}; its log ${child.log}:\n${logTail(child.log)}`));
    };
    const timer = setTimeout(() => fail(`${what} printed no port within ${ms} ms`), ms);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      if (done) return;
      buf += d;
      const i = buf.indexOf('\n');
      if (i < 0) return;
      done = true;
      clearTimeout(timer);
      resolve(buf.slice(0, i).trim());
    });
    child.exited.then(({ code, signal }) =>
      fail(`${what} exited at start (code ${code}, signal ${signal})`));
  });
}

function portOf(line, what) {
  const port = Number(line);
  if (!Number.isInteger(port) || port <= 0 || port > 65535)
    throw new Error(`${what} printed ${JSON.stringify(line)}, not a port`);
  return port;
}

// SIGTERM, then the exit status {code, signal}; SIGKILL after ms.
export async function stop(child, ms = 20000) {
  if (!child || child.exitCode !== null || child.signalCode !== null)
    return child ? { code: child.exitCode, signal: child.signalCode } : null;
  child.kill('SIGTERM');
  let timer;
  const timeout = new Promise((r) => { timer = setTimeout(() => r(null), ms); });
  const st = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (st) return st;
  child.kill('SIGKILL');
  await child.exited;
  throw new Error(`pid ${child.pid} did not exit within ${ms} ms of SIGTERM; ` +
                  `its log ${child.log}:\n${logTail(child.log)}`);
}

export function cleanup(dir, children) {
  for (const c of children) {
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  if (!dir) return;
  if (process.env.BURSAR_KEEP_TEST_DIRS) console.log(`# test files kept in ${dir}`);
  else fs.rmSync(dir, { recursive: true, force: true });
}

// ------------------------------------------------------------- the mock

// bursar-mock-provider with a script (docs/agents.md, "The mock
// provider"); .url its address, .stats() its /stats, .setScript(s) POST
// /script (replaces the script; the counters stay).
export async function startMock(dir, script) {
  const file = path.join(dir, 'mock-script.json');
  fs.writeFileSync(file, JSON.stringify(script));
  const child = start(bin('bursar-mock-provider'), ['--script', file],
                      path.join(dir, 'mock.log'));
  const port = portOf(await firstLine(child, 'bursar-mock-provider'),
                      'bursar-mock-provider');
  const url = `http://127.0.0.1:${port}`;
  return {
    child,
    port,
    url,
    async stats() {
      const r = await fetch(`${url}/stats`);
      assertStatus(r, 200, 'the mock\'s GET /stats');
      return r.json();
    },
    async setScript(s) {
      const r = await fetch(`${url}/script`, { method: 'POST', body: JSON.stringify(s) });
      assertStatus(r, 200, 'the mock\'s POST /script');
    },
  };
}

function assertStatus(r, want, what) {
  if (r.status !== want) throw new Error(`${what}: status ${r.status}, expected ${want}`);
}

// Requests the mock served for an upstream model name, of a status
// ("200", "500"; undefined: all).
export function mockCount(stats, upstream, status) {
  const m = stats.models && stats.models[upstream];
  if (!m) return 0;
  if (status === undefined) return m.requests;
  return (m.status && m.status[String(status)]) || 0;
}

// The body of the last request the mock served for an upstream model.
export function mockLastBody(stats, upstream) {
  const m = stats.models && stats.models[upstream];
  if (!m || !m.last_body) throw new Error(`the mock's /stats has no last_body for ${upstream}`);
  return m.last_body;
}

// ------------------------------------------------------------- bursard

// bursard on ipc://DIR/ctl.sock with its state in DIR/state, once it
// answers `bursar ping`. .endpoint; .export() the decision log (bursar
// export, one object per line); .stats() `bursar stats --json`.
export async function startBursard(dir, config) {
  const file = path.join(dir, 'bursard.json');
  fs.writeFileSync(file, JSON.stringify(config, null, 1));
  const endpoint = `ipc://${dir}/ctl.sock`;
  const cli = bin('bursar');
  const child = start(bin('bursard'),
                      ['--config', file, '--state-dir', path.join(dir, 'state'),
                       '--listen', endpoint],
                      path.join(dir, 'bursard.log'));
  for (let i = 0;; i++) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`bursard exited at start (code ${child.exitCode}); ` +
                      `its log:\n${logTail(child.log)}`);
    try {
      await execFileP(cli, ['--controller', endpoint, '--timeout', '200', 'ping']);
      break;
    } catch (e) {
      if (i >= 100)
        throw new Error(`bursard did not answer ping within 20 s (${e.message}); ` +
                        `its log:\n${logTail(child.log)}`);
      await sleep(100);
    }
  }
  return {
    child,
    endpoint,
    async export() {
      const { stdout } = await execFileP(cli, ['--controller', endpoint, 'export'],
                                         { maxBuffer: 64 << 20 });
      return stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    },
    async stats() {
      const { stdout } = await execFileP(cli, ['--controller', endpoint, 'stats', '--json'],
                                         { maxBuffer: 64 << 20 });
      return JSON.parse(stdout);
    },
  };
}

// ------------------------------------------------------------- the gateway

// `bursar-gateway --new-key TENANT`: line 1 the key ("bsk-" + 43
// base64url characters), line 2 its config entry
// {"tenant":..,"sha256":<64 hex of SHA-256 of the key>}; both checked.
export async function newKey(tenant) {
  const { stdout } = await execFileP(bin('bursar-gateway'), ['--new-key', tenant]);
  const lines = stdout.split('\n').filter((l) => l.length);
  if (lines.length !== 2)
    throw new Error(`bursar-gateway --new-key printed ${lines.length} lines, not 2:\n${stdout}`);
  const key = lines[0];
  if (!/^bsk-[A-Za-z0-9_-]{43}$/.test(key))
    throw new Error(`bursar-gateway --new-key: line 1 is not a key: ${JSON.stringify(key)}`);
  const entry = JSON.parse(lines[1]);
  const sha = crypto.createHash('sha256').update(key).digest('hex');
  if (entry.tenant !== tenant || entry.sha256 !== sha)
    throw new Error(`bursar-gateway --new-key: line 2 is not ` +
                    `{"tenant":"${tenant}","sha256":"${sha}"}: ${lines[1]}`);
  return { key, entry };
}

// bursar-gateway --config DIR/gateway.json --listen 127.0.0.1:0, once it
// printed its port. env: added to the environment (provider keys).
export async function startGateway(dir, config, env) {
  const file = path.join(dir, 'gateway.json');
  fs.writeFileSync(file, JSON.stringify(config, null, 1));
  const prog = bin('bursar-gateway');
  const child = start(prog, ['--config', file, '--listen', '127.0.0.1:0'],
                      path.join(dir, 'gateway.log'), env);
  const port = portOf(await firstLine(child, 'bursar-gateway'), 'bursar-gateway');
  return { child, port, url: `http://127.0.0.1:${port}`, config: file };
}

// Waits until pred(value of fn()) holds, up to ms; returns the last value
// (the caller asserts on it, so a timeout fails with what was seen).
export async function eventually(fn, pred, ms = 10000) {
  const t0 = Date.now();
  let v;
  for (;;) {
    v = await fn();
    if (pred(v) || Date.now() - t0 > ms) return v;
    await sleep(100);
  }
}
