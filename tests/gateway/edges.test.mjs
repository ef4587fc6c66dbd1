// tests/gateway/edges.test.mjs - bursar-gateway's outcomes, tool calls and
// streams at their edges, against the real bursard, the real
// bursar-gateway and bursar-mock-provider on loopback (docs/gateway.md):
//   a named model with x-bursar-outcome: client is still booked (a local
//   decision's spend reaches the ledger) and its local- id is refused at
//   /v1/feedback (400 naming decision_id); a call of tools (OpenAI's and
//   Anthropic's) is not validated as text: a bucket whose validator is
//   "json" passes it on with no escalation, reward 1; an upstream stream
//   that stalls after its first piece ends with an error event and
//   [DONE] once provider.timeout_ms has passed, and one that stalls
//   before any piece is a 504; a stream's [DONE] is not held back by a
//   slow validator, whose verdict still reaches the export; an upstream
//   4xx is not a provider error (the next model serves), and a 400 when
//   every model refused.
// The controller runs the "cheapest" policy so that the first model of a
// bucket is known. Times are bounded by deadlines of a few seconds, not
// measured tightly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import * as h from './lib.mjs';

const PROVIDER_KEY = 'mock-provider-key-edges';
const KEY_ENV = 'BURSAR_GW_EDGES_PROVIDER_KEY';
const USAGE = { in: 1000, out: 100 };
const TIMEOUT_MS = 1000; // the gateway's provider.timeout_ms
const VALIDATE_MS = 2000; // the slow validator's sleep
const TOOL_CALL = { name: 'get_weather', arguments: '{"city":"Paris"}' };

// name -> [provider, upstream model, price in, price out per Mtok]
const MODELS = {
  plain: ['openai', 'plain-up', 1, 2],
  'tool-oa': ['openai', 'tool-oa-up', 0.1, 0.2],
  'tool-an': ['anthropic', 'tool-an-up', 0.1, 0.2],
  'json-big': ['openai', 'json-up', 5, 10],
  stall: ['openai', 'stall-up', 0.1, 0.2],
  mute: ['openai', 'mute-up', 0.1, 0.2],
  slowv: ['openai', 'slowv-up', 0.1, 0.2],
  'refuse-a': ['openai', 'refuse-a-up', 0.01, 0.02],
  'refuse-b': ['anthropic', 'refuse-b-up', 0.02, 0.04],
};
const up = (name) => MODELS[name][1];
const cost = (name) => (USAGE.in * MODELS[name][2] + USAGE.out * MODELS[name][3]) / 1e6;

const SCRIPT = {
  require_key: PROVIDER_KEY,
  models: {
    'plain-up': { default: { content: 'Hello from plain.', usage: USAGE } },
    'tool-oa-up': { default: { tool_calls: [TOOL_CALL], usage: USAGE } },
    'tool-an-up': { default: { tool_calls: [TOOL_CALL], usage: USAGE } },
    'json-up': { default: { content: '{"ok":true}', usage: USAGE } },
    // the first piece, then nothing for 5 s
    'stall-up': { default: { content: 'one two three four', chunks: 4, stall_after: 1,
                             stall_ms: 5000, usage: USAGE } },
    // the role chunk, then nothing for 5 s
    'mute-up': { default: { content: 'never', chunks: 1, chunk_ms: 5000, usage: USAGE } },
    'slowv-up': { default: { content: 'a slowly validated stream', chunks: 3, usage: USAGE } },
    // an upstream refusing the request itself (a 4xx other than 429)
    'refuse-a-up': { default: { status: 400, error_message: 'too many tokens for refuse-a' } },
    'refuse-b-up': { default: { status: 400, error_message: 'too many tokens for refuse-b' } },
  },
};

let dir, mock, ctl, gw, key, client;

before(async () => {
  dir = h.tmpdir();
  mock = await h.startMock(dir, SCRIPT);
  const models = {};
  for (const [name, [provider, model, pin, pout]] of Object.entries(MODELS))
    models[name] = {
      provider, model, base_url: `http://127.0.0.1:${mock.port}/v1`,
      api_key_env: KEY_ENV, price_in_per_mtok: pin, price_out_per_mtok: pout,
    };
  ctl = await h.startBursard(dir, {
    models,
    buckets: {
      general: { models: ['plain'] },
      // the tool-calling model first, a model answering JSON to escalate to
      tools: { models: ['tool-oa', 'json-big'] },
      tools_an: { models: ['tool-an', 'json-big'] },
      stall: { models: ['stall'] },
      mute: { models: ['mute'] },
      slowval: { models: ['slowv'] },
      refuse: { models: ['refuse-a', 'plain'] },
      refuse_all: { models: ['refuse-a', 'refuse-b'] },
    },
    policy: { name: 'cheapest' },
    unknown_bucket: { action: 'error' },
  });
  const k = await h.newKey('acme');
  key = k.key;
  gw = await h.startGateway(dir, {
    controller: ctl.endpoint,
    spool: `${dir}/gateway.spool`,
    models,
    routing: { default: 'general', rules: [] },
    validators: {
      tools: 'json',
      tools_an: 'json',
      slowval: { type: 'command', cmd: `sleep ${VALIDATE_MS / 1000}; exit 0`, timeout_ms: 5000 },
    },
    max_escalations: 2,
    keys: [k.entry],
    allow_anonymous: false,
    provider: { timeout_ms: TIMEOUT_MS, connect_timeout_ms: 1000, max_attempts: 1 },
  }, { [KEY_ENV]: PROVIDER_KEY });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20000 });
});

after(() => h.cleanup(dir, [gw && gw.child, ctl && ctl.child, mock && mock.child]));

// The export row of an x-bursar-decision-id (a token, or local-<local id>),
// or undefined.
function rowOf(rows, id) {
  return id.startsWith('local-')
    ? rows.find((r) => r.local === true && r.local_id === id.slice(6))
    : rows.find((r) => r.decision_id === id);
}

// The row once pred holds of it (10 s at most); fails naming what was seen.
async function settledRow(id, pred, what) {
  const rows = await h.eventually(() => ctl.export(), (rs) => {
    const d = rowOf(rs, id);
    return d !== undefined && pred(d);
  });
  const d = rowOf(rows, id);
  assert.ok(d, `decision ${id} is not in bursard's export (${rows.length} rows): ${what}`);
  assert.ok(pred(d), `decision ${id}: ${what}; its row: ${JSON.stringify(d)}`);
  return d;
}

async function postFeedback(body) {
  const r = await fetch(`${gw.url}/v1/feedback`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

let localId;

test('a named model with x-bursar-outcome: client is booked all the same, with its cost', async () => {
  const { data, response } = await client.chat.completions.create(
    { model: 'plain', messages: [{ role: 'user', content: 'Hello; I judge it myself.' }] },
    { headers: { 'x-bursar-outcome': 'client' } }).withResponse();
  assert.equal(data.choices[0].message.content, 'Hello from plain.');
  const id = response.headers.get('x-bursar-decision-id');
  assert.match(id || '', /^local-[0-9a-f]{32}$/, `x-bursar-decision-id ${id}`);
  assert.equal(response.headers.get('x-bursar-model'), 'plain');
  localId = id;
  // the gateway books the local decision: its spend reaches the ledger
  const d = await settledRow(id, (r) => r.status === 'done', 'booked');
  assert.equal(d.local, true);
  assert.equal(d.model, 'plain');
  assert.equal(d.bucket, 'general');
  assert.ok(Math.abs(d.cost_usd - cost('plain')) < 1e-12,
            `cost_usd ${d.cost_usd}, expected ${cost('plain')}`);
  assert.equal(d.tenant, 'acme');
});

test('a local- decision id at /v1/feedback is a 400 naming decision_id', async () => {
  assert.ok(localId, 'the previous test gave no local decision id');
  const made = `local-${'0123456789abcdef'.repeat(2)}`;
  for (const id of [localId, made]) {
    for (const body of [{ decision_id: id, reward: 1 }, { decision_id: id, correction: true }]) {
      const r = await postFeedback(body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.type, 'invalid_request_error');
      assert.equal(r.body.error.param, 'decision_id');
      assert.match(r.body.error.message, /decision_id/);
    }
  }
});

const TOOLS = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];

for (const [bucket, model] of [['tools', 'tool-oa'], ['tools_an', 'tool-an']]) {
  test(`a call of tools (${MODELS[model][0]} format) passes a "json" validator unescalated`, async () => {
    const before = await mock.stats();
    const { data, response } = await client.chat.completions.create({
      model: `bursar/${bucket}`,
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      tools: TOOLS,
    }).withResponse();
    const ch = data.choices[0];
    assert.equal(ch.finish_reason, 'tool_calls');
    assert.equal(ch.message.content, null);
    assert.equal(ch.message.tool_calls.length, 1);
    const tc = ch.message.tool_calls[0];
    assert.equal(tc.type, 'function');
    assert.equal(tc.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(tc.function.arguments), { city: 'Paris' });
    assert.ok(tc.id, 'the tool call has no id');
    assert.equal(data.model, model);
    assert.equal(response.headers.get('x-bursar-model'), model);
    assert.equal(response.headers.get('x-bursar-escalations'), '0');
    // the JSON-answering model was not asked
    const st = await mock.stats();
    assert.equal(h.mockCount(st, up('json-big')), h.mockCount(before, up('json-big')));
    assert.equal(h.mockCount(st, up(model), 200), h.mockCount(before, up(model), 200) + 1);
    // the tools went upstream (Anthropic's shape for tool-an)
    const sent = h.mockLastBody(st, up(model));
    const name = MODELS[model][0] === 'anthropic' ? sent.tools[0].name : sent.tools[0].function.name;
    assert.equal(name, 'get_weather');
    const id = response.headers.get('x-bursar-decision-id');
    const d = await settledRow(id, (r) => r.status === 'done', 'its outcome reported');
    assert.equal(d.model, model);
    assert.equal(d.reward, 1);
    assert.equal(d.outcome, 1);
  });
}

// POST /v1/chat/completions streamed, read as raw server-sent events until
// the end of the body or deadlineMs. Returns {status, headers, text,
// events (the data: lines), doneAt (ms after the request, when data:
// [DONE] arrived, or null), endedAt, timedOut}.
async function rawStream(body, deadlineMs) {
  const t0 = Date.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), deadlineMs);
  const out = { status: 0, headers: null, text: '', events: [], doneAt: null, endedAt: null,
                timedOut: false };
  try {
    const r = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true }),
      signal: ac.signal,
    });
    out.status = r.status;
    out.headers = r.headers;
    const dec = new TextDecoder();
    for await (const piece of r.body) {
      out.text += dec.decode(piece, { stream: true });
      if (out.doneAt === null && out.text.includes('data: [DONE]')) out.doneAt = Date.now() - t0;
    }
    out.endedAt = Date.now() - t0;
  } catch (e) {
    if (!ac.signal.aborted) throw e;
    out.timedOut = true;
  } finally {
    clearTimeout(timer);
  }
  out.events = out.text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
  return out;
}

test('an upstream stream that stalls after its first piece ends with an error event and [DONE]', async () => {
  const s = await rawStream({ model: 'bursar/stall', messages: [{ role: 'user', content: 'count' }] },
                            4000);
  assert.equal(s.timedOut, false,
               `the stream was still open after 4 s (provider.timeout_ms ${TIMEOUT_MS}); ` +
               `received:\n${s.text}`);
  assert.equal(s.status, 200, s.text);
  assert.equal(s.headers.get('x-bursar-model'), 'stall');
  const ev = s.events;
  assert.equal(ev[ev.length - 1], '[DONE]', `the last event: ${ev[ev.length - 1]}`);
  assert.equal(ev.filter((e) => e === '[DONE]').length, 1);
  const chunks = ev.slice(0, -2).map((e) => JSON.parse(e));
  const text = chunks.map((c) => (c.choices && c.choices[0] && c.choices[0].delta.content) || '')
    .join('');
  assert.equal(text, 'one ', 'the first piece was not passed on');
  const err = JSON.parse(ev[ev.length - 2]);
  assert.ok(err.error, `no error event before [DONE]: ${ev[ev.length - 2]}`);
  assert.equal(typeof err.error.message, 'string');
  assert.ok(s.doneAt >= TIMEOUT_MS - 100, `[DONE] after ${s.doneAt} ms, before the stall's timeout`);
  const d = await settledRow(s.headers.get('x-bursar-decision-id'),
                             (r) => r.status === 'done', 'its outcome reported');
  assert.equal(d.reward, 0); // a stream cut short is not a success
});

test('an upstream stream that stalls before its first piece is a 504 (timeout_error)', async () => {
  const t0 = Date.now();
  const r = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bursar/mute', stream: true,
                           messages: [{ role: 'user', content: 'say nothing' }] }),
    signal: AbortSignal.timeout(4000),
  });
  const body = await r.json();
  assert.equal(r.status, 504, JSON.stringify(body));
  assert.equal(body.error.type, 'timeout_error');
  assert.ok(Date.now() - t0 < 4000);
});

test('a stream\'s [DONE] is not held back by a slow validator; its verdict still reaches the export', async () => {
  const s = await rawStream({ model: 'bursar/slowval',
                              messages: [{ role: 'user', content: 'validate me slowly' }] }, 5000);
  assert.equal(s.status, 200, s.text);
  assert.ok(s.doneAt !== null, `no [DONE] within 5 s:\n${s.text}`);
  assert.ok(s.doneAt < 1500,
            `[DONE] came ${s.doneAt} ms after the request: held back by the ${VALIDATE_MS} ms validator`);
  assert.equal(s.events[s.events.length - 1], '[DONE]');
  assert.ok(!s.events.some((e) => e !== '[DONE]' && JSON.parse(e).error), 'an error event');
  const id = s.headers.get('x-bursar-decision-id');
  const d = await settledRow(id, (r) => r.status === 'done', 'its outcome reported after validation');
  assert.equal(d.model, 'slowv');
  assert.equal(d.reward, 1);
});

test('an upstream 4xx is no provider error: the next model serves, and when every model refuses, a 400', async () => {
  const { data, response } = await client.chat.completions.create({
    model: 'bursar/refuse', messages: [{ role: 'user', content: 'a request refuse-a refuses' }],
  }).withResponse();
  assert.equal(data.model, 'plain');
  const id = response.headers.get('x-bursar-decision-id');
  const d = await settledRow(id, (r) => r.status === 'done', 'its outcome reported');
  assert.equal(d.model, 'refuse-a');
  assert.equal(d.served_model, 'plain');
  assert.ok(!d.provider_error, `a provider_error for an upstream 400: ${JSON.stringify(d)}`);
  const r = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bursar/refuse_all',
                           messages: [{ role: 'user', content: 'a request everyone refuses' }] }),
  });
  const body = await r.json();
  assert.equal(r.status, 400, JSON.stringify(body));
  assert.equal(body.error.type, 'invalid_request_error');
  assert.equal(body.error.code, 'upstream_refused');
  assert.match(body.error.message, /too many tokens for refuse-/);
});

test('the gateway exits 0 on SIGTERM (no leak under the sanitizer build)', async () => {
  const st = await h.stop(gw.child);
  assert.deepEqual(st, { code: 0, signal: null },
                   `bursar-gateway's log:\n${h.logTail(gw.child.log)}`);
  assert.deepEqual(await h.stop(ctl.child), { code: 0, signal: null });
});
