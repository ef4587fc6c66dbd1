// tests/gateway/trial.test.mjs - what a new user's first trial of
// bursar-gateway ran into, against the real bursard, the real
// bursar-gateway and bursar-mock-provider on loopback (docs/gateway.md):
//   a model whose api_key_env names a variable that is not set (and its
//   bucket's only other model the same) is the gateway's setup, not the
//   provider's health: 500 gateway_misconfigured naming the variable, no
//   provider_error on the decision, the models not cooled down; every
//   model of a bucket answering 429 gives the client a 429 (the SDK's
//   RateLimitError, code upstream_rate_limited); GET /v1/models/{id}
//   (the SDK's models.retrieve) and a 404 model_not_found; the header
//   x-bursar-outcome other than client or gateway refused (400 naming it);
//   a request every model failed logged on stderr naming its bucket; and,
//   the controller stopped, a mistyped bucket is 404 unknown_bucket while
//   a real one is served by a local decision, by a gateway with a
//   fallback_model and by one without (where the client's local choice
//   finds no candidate for the mistyped bucket), the controller's going
//   away logged.
// The controller opens a model's breaker on one provider error from one
// client (health.failures 1, health.min_clients 1), so that a provider
// error wrongly reported shows as a cooldown in `bursar stats`. The tests
// run in order and share the daemons; the controller is stopped last.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import OpenAI from 'openai';

import * as h from './lib.mjs';

const PROVIDER_KEY = 'mock-provider-key-trial';
const KEY_ENV = 'BURSAR_GW_TRIAL_PROVIDER_KEY';
const UNSET_ENV = 'BURSAR_GW_TRIAL_UNSET_KEY'; // never set
const USAGE = { in: 1000, out: 100 };
const CTL_TIMEOUT_MS = 1000; // the gateway's controller_timeout_ms (1 attempt)

// name -> [provider, upstream model, price in, price out per Mtok, key variable]
const MODELS = {
  plain: ['openai', 'plain-up', 1, 2, KEY_ENV],
  'nokey-a': ['openai', 'nokey-a-up', 0.1, 0.2, UNSET_ENV],
  'nokey-b': ['anthropic', 'nokey-b-up', 0.2, 0.4, UNSET_ENV],
  'lim-a': ['openai', 'lim-a-up', 0.1, 0.2, KEY_ENV],
  'lim-b': ['anthropic', 'lim-b-up', 0.2, 0.4, KEY_ENV],
};
const up = (name) => MODELS[name][1];

const SCRIPT = {
  require_key: PROVIDER_KEY,
  models: {
    'plain-up': { default: { content: 'Hello from plain.', usage: USAGE } },
    'nokey-a-up': { default: { content: 'never called', usage: USAGE } },
    'nokey-b-up': { default: { content: 'never called', usage: USAGE } },
    'lim-a-up': { default: { status: 429, error_message: 'slow down, lim-a' } },
    'lim-b-up': { default: { status: 429, error_message: 'slow down, lim-b' } },
  },
};

let dir, mock, ctl, gw, key, entry, client, models;
let g3; // a gateway without fallback_model (the controller away)

function gatewayConfig(spool) {
  return {
    controller: ctl.endpoint,
    spool,
    models,
    routing: { default: 'general', rules: [] },
    max_escalations: 1,
    keys: [entry],
    allow_anonymous: false,
    controller_timeout_ms: CTL_TIMEOUT_MS,
    controller_attempts: 1,
    provider: { timeout_ms: 5000, connect_timeout_ms: 1000, max_attempts: 1 },
  };
}

before(async () => {
  delete process.env[UNSET_ENV];
  dir = h.tmpdir();
  mock = await h.startMock(dir, SCRIPT);
  models = {};
  for (const [name, [provider, model, pin, pout, env]] of Object.entries(MODELS))
    models[name] = {
      provider, model, base_url: `http://127.0.0.1:${mock.port}/v1`,
      api_key_env: env, price_in_per_mtok: pin, price_out_per_mtok: pout,
    };
  ctl = await h.startBursard(dir, {
    models,
    buckets: {
      general: { models: ['plain'] },
      nokey: { models: ['nokey-a', 'nokey-b'] },
      limited: { models: ['lim-a', 'lim-b'] },
    },
    policy: { name: 'cheapest' },
    unknown_bucket: { action: 'error' },
    health: { failures: 1, min_clients: 1 },
  });
  const k = await h.newKey('acme');
  key = k.key;
  entry = k.entry;
  gw = await h.startGateway(dir, { ...gatewayConfig(`${dir}/gateway.spool`),
                                   fallback_model: 'plain' },
                            { [KEY_ENV]: PROVIDER_KEY });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20000 });
});

after(() => h.cleanup(dir, [gw && gw.child, g3 && g3.child, ctl && ctl.child,
                            mock && mock.child]));

// POST /v1/chat/completions with fetch: {status, headers, body (parsed)}.
async function post(url, body, headers = {}) {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  return { status: r.status, headers: r.headers, body: await r.json() };
}

const hello = (model) => ({ model, messages: [{ role: 'user', content: `Hello, ${model}.` }] });

test('a model whose api_key_env is not set, and its only alternative the same: 500 gateway_misconfigured, no provider_error, no cooldown', async () => {
  // a gateway of its own, stopped after the request: its stop drains the
  // reports it queued, so what the export shows then is all it sent
  const sub = path.join(dir, 'nokey');
  fs.mkdirSync(sub);
  const g2 = await h.startGateway(sub, gatewayConfig(`${sub}/gateway.spool`),
                                  { [KEY_ENV]: PROVIDER_KEY });
  let r;
  try {
    r = await post(g2.url, hello('bursar/nokey'));
  } finally {
    const st = await h.stop(g2.child);
    assert.deepEqual(st, { code: 0, signal: null }, `its log:\n${h.logTail(g2.child.log)}`);
  }
  assert.equal(r.status, 500, JSON.stringify(r.body));
  assert.equal(r.body.error.type, 'api_error');
  assert.equal(r.body.error.code, 'gateway_misconfigured');
  assert.match(r.body.error.message, new RegExp(UNSET_ENV), 'the message names the variable');
  // its stderr names the bucket of the request every model failed
  const log = fs.readFileSync(g2.child.log, 'utf8');
  assert.match(log, /bucket nokey: every model failed/, `its log:\n${log}`);
  // nothing was sent upstream
  const st = await mock.stats();
  assert.equal(h.mockCount(st, up('nokey-a')), 0);
  assert.equal(h.mockCount(st, up('nokey-b')), 0);
  // the decision: no provider_error (a missing key is not the provider's health)
  const rows = (await ctl.export()).filter((d) => d.bucket === 'nokey');
  assert.equal(rows.length, 1, `decisions of bucket nokey: ${JSON.stringify(rows)}`);
  assert.equal(rows[0].model, 'nokey-a');
  assert.equal(rows[0].provider_error, null, `a provider_error: ${JSON.stringify(rows[0])}`);
  // neither model is cooled down
  const stats = await ctl.stats();
  for (const m of ['nokey-a', 'nokey-b']) {
    const hl = stats.health.find((x) => x.model === m);
    assert.ok(hl, `${m} is not in bursar stats' health`);
    assert.equal(hl.state, 'ok', `${m}: ${JSON.stringify(hl)}`);
    assert.equal(hl.errors_total, 0, `${m}: ${JSON.stringify(hl)}`);
  }
});

test('every model of the bucket answering 429: the client gets 429 upstream_rate_limited (RateLimitError)', async () => {
  const before = await mock.stats();
  await assert.rejects(client.chat.completions.create(hello('bursar/limited')), (e) => {
    assert.ok(e instanceof OpenAI.RateLimitError, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 429);
    assert.equal(e.type, 'rate_limit_error');
    assert.equal(e.code, 'upstream_rate_limited');
    assert.match(e.message, /slow down, lim-/);
    return true;
  });
  // both were asked, once each (provider.max_attempts 1)
  const st = await mock.stats();
  for (const m of ['lim-a', 'lim-b'])
    assert.equal(h.mockCount(st, up(m), 429), h.mockCount(before, up(m), 429) + 1, m);
});

test('a request every model failed is logged on stderr, naming its bucket', async () => {
  const log = fs.readFileSync(gw.child.log, 'utf8');
  const lines = log.split('\n').filter((l) => /every model failed/.test(l));
  assert.ok(lines.some((l) => /bucket limited\b/.test(l) && /slow down, lim-/.test(l)),
            `no line naming bucket limited and its last error in the log:\n${log}`);
});

test('GET /v1/models/{id}: bursar/auto, a bucket and a configured model; an unknown id is 404 model_not_found', async () => {
  const auto = await client.models.retrieve('bursar/auto');
  assert.deepEqual({ id: auto.id, object: auto.object, owned_by: auto.owned_by },
                   { id: 'bursar/auto', object: 'model', owned_by: 'bursar' });
  const bucket = await client.models.retrieve('bursar/general');
  assert.equal(bucket.id, 'bursar/general');
  assert.equal(bucket.object, 'model');
  for (const [name, [provider]] of Object.entries(MODELS)) {
    const m = await client.models.retrieve(name);
    assert.equal(m.id, name);
    assert.equal(m.object, 'model');
    assert.equal(m.owned_by, provider);
  }
  for (const id of ['no-such-model', 'bursar/no-such-bucket']) {
    await assert.rejects(client.models.retrieve(id), (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `${id}: ${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 404);
      assert.equal(e.code, 'model_not_found');
      assert.equal(e.param, 'model');
      assert.ok(e.message.includes(id), `the message does not name ${id}: ${e.message}`);
      return true;
    });
  }
  // a key is needed as on every /v1/ route
  const r = await fetch(`${gw.url}/v1/models/bursar/auto`);
  assert.equal(r.status, 401);
});

test('x-bursar-outcome: bogus is a 400 naming the header; gateway is served, its outcome reported', async () => {
  const bad = await post(gw.url, hello('bursar/general'), { 'x-bursar-outcome': 'bogus' });
  assert.equal(bad.status, 400, JSON.stringify(bad.body));
  assert.equal(bad.body.error.type, 'invalid_request_error');
  assert.match(bad.body.error.message, /x-bursar-outcome/);
  const ok = await post(gw.url, hello('bursar/general'), { 'x-bursar-outcome': 'gateway' });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.choices[0].message.content, 'Hello from plain.');
  const id = ok.headers.get('x-bursar-decision-id');
  assert.ok(id && !id.startsWith('local-'), `x-bursar-decision-id ${id}`);
  // the gateway reports the outcome, as without the header
  const rows = await h.eventually(() => ctl.export(),
                                  (rs) => rs.some((d) => d.decision_id === id && d.status === 'done'));
  const d = rows.find((x) => x.decision_id === id);
  assert.ok(d && d.status === 'done', `decision ${id}: ${JSON.stringify(d)}`);
  assert.equal(d.reward, 1);
});

// A decision with the controller (the gateway's client learns its
// buckets), then the controller stopped: a mistyped bucket is 404
// unknown_bucket, a real one is served by a local decision.
async function awayChecks(g, what) {
  const t0 = Date.now();
  const nope = await post(g.url, hello('bursar/nope'));
  assert.equal(nope.status, 404, `${what}: ${JSON.stringify(nope.body)}`);
  assert.equal(nope.body.error.type, 'not_found_error');
  assert.equal(nope.body.error.code, 'unknown_bucket');
  assert.equal(nope.body.error.param, 'model');
  assert.match(nope.body.error.message, /"nope"/);
  const ok = await post(g.url, hello('bursar/general'));
  assert.equal(ok.status, 200, `${what}: ${JSON.stringify(ok.body)}`);
  assert.equal(ok.body.choices[0].message.content, 'Hello from plain.');
  assert.equal(ok.headers.get('x-bursar-model'), 'plain');
  assert.match(ok.headers.get('x-bursar-decision-id') || '', /^local-/);
  assert.ok(Date.now() - t0 < 3 * CTL_TIMEOUT_MS, `${what}: ${Date.now() - t0} ms`);
  // the controller's going away is logged
  const log = fs.readFileSync(g.child.log, 'utf8');
  assert.match(log, /the controller \S+ does not answer/, `${what}'s log:\n${log}`);
}

test('the controller away: a mistyped bucket is 404 unknown_bucket, a real one served by a local decision', async () => {
  const sub = path.join(dir, 'nofallback');
  fs.mkdirSync(sub);
  g3 = await h.startGateway(sub, gatewayConfig(`${sub}/gateway.spool`),
                            { [KEY_ENV]: PROVIDER_KEY });
  for (const g of [gw, g3]) {
    const first = await post(g.url, hello('bursar/general'));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.ok(!first.headers.get('x-bursar-decision-id').startsWith('local-'));
  }
  assert.deepEqual(await h.stop(ctl.child), { code: 0, signal: null });
  await awayChecks(gw, 'the gateway with fallback_model plain');
});

test('the controller away, no fallback_model: a mistyped bucket is 404 unknown_bucket all the same', async () => {
  assert.ok(g3, 'the previous test started no gateway');
  try {
    await awayChecks(g3, 'the gateway without fallback_model');
  } finally {
    assert.deepEqual(await h.stop(g3.child), { code: 0, signal: null },
                     `its log:\n${h.logTail(g3.child.log)}`);
  }
});

test('the gateway exits 0 on SIGTERM (no leak under the sanitizer build)', async () => {
  const st = await h.stop(gw.child);
  assert.deepEqual(st, { code: 0, signal: null },
                   `bursar-gateway's log:\n${h.logTail(gw.child.log)}`);
});
