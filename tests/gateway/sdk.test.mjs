// tests/gateway/sdk.test.mjs - bursar-gateway driven by a client nobody
// here wrote: the official OpenAI Node SDK (npm "openai", the version
// package-lock.json pins), against the real bursard, the real
// bursar-gateway and bursar-mock-provider speaking OpenAI and Anthropic
// formats, all on loopback (issue 11, "What it must show").
//
// The controller runs the "cheapest" policy, so that which model a bucket
// tries first is known: in "general" g-cheap, then g-mid, then
// claude-mock (an Anthropic-format upstream); in "extraction" x-cheap,
// then x-good. The tests run in order and share the daemons:
//   a plain completion, a streamed one (with and without include_usage),
//   a configured model name on the Anthropic upstream (plain and
//   streamed), /v1/models, a fallback after an upstream 500, an escalation
//   after an answer that fails the request's JSON schema, errors through
//   the SDK (unknown bucket and model: NotFoundError; wrong key:
//   AuthenticationError), a correction through /v1/feedback checked in
//   bursard's export, an outcome the application reports itself
//   (x-bursar-outcome: client), the tenant of the key on every decision,
//   and the gateway's exit status on SIGTERM (0; LeakSanitizer in the
//   sanitizer build).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import * as h from './lib.mjs';

const PROVIDER_KEY = 'mock-provider-key-3f9a';
const KEY_ENV = 'BURSAR_GW_TEST_PROVIDER_KEY';
const USAGE = { in: 1000, out: 100 };

// name -> [provider, upstream model, price in, price out per Mtok]
const MODELS = {
  'g-cheap': ['openai', 'g-cheap-up', 0.1, 0.2],
  'g-mid': ['openai', 'g-mid-up', 1, 2],
  'claude-mock': ['anthropic', 'claude-up', 3, 15],
  'x-cheap': ['openai', 'x-cheap-up', 0.05, 0.1],
  'x-good': ['openai', 'x-good-up', 5, 10],
};
const CONTENT = {
  'g-cheap-up': 'Hello from the cheap general model, in several words to stream.',
  'g-mid-up': 'Hello from the middle model, which serves when the cheap one fails.',
  'claude-up': 'Hello from the Anthropic-format model, translated both ways.',
  'x-cheap-up': 'Sure! Her name is Ada and she is 36.',
  'x-good-up': '{"name":"Ada","age":36}',
};
const up = (name) => MODELS[name][1];
// USD of one answer with the scripted usage
const cost = (name) => (USAGE.in * MODELS[name][2] + USAGE.out * MODELS[name][3]) / 1e6;

function mockScript(overrides = {}) {
  const models = {};
  for (const [u, content] of Object.entries(CONTENT))
    models[u] = { default: { content, usage: USAGE, chunks: 6, chunk_ms: 5 }, ...(overrides[u] || {}) };
  return { require_key: PROVIDER_KEY, models };
}

function modelTable(mockPort) {
  const t = {};
  for (const [name, [provider, model, pin, pout]] of Object.entries(MODELS))
    t[name] = {
      provider, model, base_url: `http://127.0.0.1:${mockPort}/v1`,
      api_key_env: KEY_ENV, price_in_per_mtok: pin, price_out_per_mtok: pout,
    };
  return t;
}

let dir, mock, ctl, gw, key, client;

before(async () => {
  dir = h.tmpdir();
  mock = await h.startMock(dir, mockScript());
  const models = modelTable(mock.port);
  ctl = await h.startBursard(dir, {
    models,
    buckets: {
      general: { models: ['g-cheap', 'g-mid', 'claude-mock'] },
      extraction: { models: ['x-cheap', 'x-good'] },
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
    routing: { default: 'general', rules: [{ bucket: 'extraction', regex: 'extract', icase: true }] },
    max_escalations: 2,
    keys: [k.entry],
    allow_anonymous: false,
    limits: { max_body_bytes: 1048576, max_connections: 64 },
    provider: { timeout_ms: 10000, connect_timeout_ms: 2000, max_attempts: 1 },
  }, { [KEY_ENV]: PROVIDER_KEY });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20000 });
});

after(() => h.cleanup(dir, [gw && gw.child, ctl && ctl.child, mock && mock.child]));

function bursarHeaders(response) {
  const g = (n) => response.headers.get(n);
  return {
    id: g('x-bursar-decision-id'),
    model: g('x-bursar-model'),
    bucket: g('x-bursar-bucket'),
    cost: g('x-bursar-cost-usd'),
    escalations: g('x-bursar-escalations'),
  };
}

// The export row of an x-bursar-decision-id: a controller's decision
// token, or "local-" and the local id of a decision the gateway made (and
// booked) itself, as for a configured model name.
function findDecision(rows, id) {
  const d = id.startsWith('local-')
    ? rows.find((r) => r.local === true && r.local_id === id.slice(6))
    : rows.find((r) => r.decision_id === id);
  assert.ok(d, `decision ${id} is not in bursard's export (${rows.length} rows)`);
  return d;
}

const ids = {}; // decision ids of the requests below, for the export checks

test('a plain completion: the mock\'s content, the model that served, the x-bursar headers', async () => {
  const { data, response } = await client.chat.completions.create({
    model: 'bursar/general',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }],
    temperature: 0.2,
    max_tokens: 64,
  }).withResponse();
  assert.equal(response.status, 200);
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.equal(data.choices[0].message.content, CONTENT[up('g-cheap')]);
  // the configured name of the model that served, not the upstream's
  assert.equal(data.model, 'g-cheap');
  assert.equal(data.usage.prompt_tokens, USAGE.in);
  assert.equal(data.usage.completion_tokens, USAGE.out);
  const b = bursarHeaders(response);
  assert.ok(b.id && b.id.length > 0, 'x-bursar-decision-id is missing');
  assert.equal(b.model, 'g-cheap');
  assert.equal(b.bucket, 'general');
  assert.ok(b.cost !== null, 'x-bursar-cost-usd is missing');
  assert.ok(Math.abs(Number(b.cost) - cost('g-cheap')) < 1e-9,
            `x-bursar-cost-usd ${b.cost}, expected ${cost('g-cheap')}`);
  assert.equal(b.escalations, '0');
  ids.plain = b.id;
  const st = await mock.stats();
  assert.equal(h.mockCount(st, up('g-cheap'), 200), 1);
  // the upstream request: the upstream's model name, the parameters passed through
  const sent = h.mockLastBody(st, up('g-cheap'));
  assert.equal(sent.model, up('g-cheap'));
  assert.equal(sent.temperature, 0.2);
  assert.equal(sent.max_tokens, 64);
  assert.deepEqual(sent.messages, [{ role: 'system', content: 'Be brief.' },
                                   { role: 'user', content: 'Say hello.' }]);
});

async function collect(stream) {
  const chunks = [];
  let text = '';
  for await (const c of stream) {
    chunks.push(c);
    for (const ch of c.choices) text += (ch.delta && ch.delta.content) || '';
  }
  return { chunks, text };
}

test('a streamed completion: the chunks make the content, the last carries the usage', async () => {
  const before = await mock.stats();
  const { data: stream, response } = await client.chat.completions.create({
    model: 'bursar/general',
    messages: [{ role: 'user', content: 'Say hello, streamed.' }],
    stream: true,
    stream_options: { include_usage: true },
  }).withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') || '', /^text\/event-stream/);
  const b = bursarHeaders(response);
  assert.ok(b.id, 'x-bursar-decision-id is missing');
  assert.equal(b.model, 'g-cheap');
  assert.equal(b.bucket, 'general');
  const { chunks, text } = await collect(stream);
  assert.equal(text, CONTENT[up('g-cheap')]);
  // one chunk per upstream event at least: the content came in pieces
  assert.ok(chunks.filter((c) => c.choices.length && c.choices[0].delta.content).length >= 2,
            `the content came in ${chunks.length} chunks`);
  for (const c of chunks) {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.model, 'g-cheap');
  }
  const last = chunks[chunks.length - 1];
  assert.ok(last.usage, 'the last chunk has no usage');
  assert.equal(last.usage.prompt_tokens, USAGE.in);
  assert.equal(last.usage.completion_tokens, USAGE.out);
  for (const c of chunks.slice(0, -1)) assert.ok(c.usage == null, 'usage before the last chunk');
  assert.ok(chunks.some((c) => c.choices.length && c.choices[0].finish_reason === 'stop'),
            'no chunk says finish_reason "stop"');
  // the upstream call was streamed too (the mock counts streamed requests)
  const st = await mock.stats();
  assert.equal(h.mockCount(st, up('g-cheap'), 200), h.mockCount(before, up('g-cheap'), 200) + 1);
  assert.equal(streamedCount(st, up('g-cheap')), streamedCount(before, up('g-cheap')) + 1);
  ids.streamed = b.id;
});

// The mock's count of streamed requests of an upstream model.
function streamedCount(stats, upstream) {
  const m = stats.models && stats.models[upstream];
  return (m && m.streamed) || 0;
}

test('a streamed completion without include_usage has no usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'bursar/general',
    messages: [{ role: 'user', content: 'Say hello, streamed, no usage.' }],
    stream: true,
  });
  const { chunks, text } = await collect(stream);
  assert.equal(text, CONTENT[up('g-cheap')]);
  for (const c of chunks) assert.ok(c.usage == null, 'a usage chunk without include_usage');
});

test('a configured model name on the Anthropic-format upstream, translated both ways', async () => {
  const before = await mock.stats();
  const { data, response } = await client.chat.completions.create({
    model: 'claude-mock',
    messages: [{ role: 'system', content: 'You answer in English.' },
               { role: 'user', content: 'Say hello from Anthropic.' }],
    max_tokens: 128,
  }).withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices[0].message.content, CONTENT[up('claude-mock')]);
  assert.equal(data.choices[0].finish_reason, 'stop'); // Anthropic's end_turn
  assert.equal(data.model, 'claude-mock');
  assert.equal(data.usage.prompt_tokens, USAGE.in);
  assert.equal(data.usage.completion_tokens, USAGE.out);
  const b = bursarHeaders(response);
  assert.equal(b.model, 'claude-mock');
  assert.ok(b.id, 'x-bursar-decision-id is missing');
  assert.ok(Math.abs(Number(b.cost) - cost('claude-mock')) < 1e-9,
            `x-bursar-cost-usd ${b.cost}, expected ${cost('claude-mock')}`);
  const st = await mock.stats();
  assert.equal(h.mockCount(st, up('claude-mock'), 200), h.mockCount(before, up('claude-mock'), 200) + 1);
  // the upstream request in Anthropic's shape: system on top, max_tokens
  const sent = h.mockLastBody(st, up('claude-mock'));
  assert.equal(sent.model, up('claude-mock'));
  assert.equal(sent.system, 'You answer in English.');
  assert.equal(sent.max_tokens, 128);
  assert.deepEqual(sent.messages, [{ role: 'user', content: 'Say hello from Anthropic.' }]);
  ids.anthropic = b.id;
});

test('a streamed completion from the Anthropic-format upstream', async () => {
  const before = await mock.stats();
  const { data: stream, response } = await client.chat.completions.create({
    model: 'claude-mock',
    messages: [{ role: 'user', content: 'Say hello from Anthropic, streamed.' }],
    stream: true,
    stream_options: { include_usage: true },
  }).withResponse();
  assert.equal(bursarHeaders(response).model, 'claude-mock');
  const { chunks, text } = await collect(stream);
  assert.equal(text, CONTENT[up('claude-mock')]);
  const last = chunks[chunks.length - 1];
  assert.ok(last.usage, 'the last chunk has no usage');
  assert.equal(last.usage.prompt_tokens, USAGE.in);
  assert.equal(last.usage.completion_tokens, USAGE.out);
  const st = await mock.stats();
  assert.equal(streamedCount(st, up('claude-mock')), streamedCount(before, up('claude-mock')) + 1);
});

test('/v1/models lists bursar/auto, each bucket and each configured model', async () => {
  const got = [];
  for await (const m of client.models.list()) got.push(m.id);
  const want = ['bursar/auto', 'bursar/general', 'bursar/extraction', ...Object.keys(MODELS)];
  for (const id of want) assert.ok(got.includes(id), `${id} is not in /v1/models: ${got}`);
});

test('a fallback after an upstream 500: another model of the bucket answers', async () => {
  // g-cheap (tried first) answers 500 once; the provider does not retry
  // (max_attempts 1), so the gateway falls back in the controller's order
  await mock.setScript(mockScript({ [up('g-cheap')]: { sequence: [{ status: 500 }] } }));
  const before = await mock.stats();
  const { data, response } = await client.chat.completions.create({
    model: 'bursar/general',
    messages: [{ role: 'user', content: 'Say hello after a failure.' }],
  }).withResponse();
  const b = bursarHeaders(response);
  assert.notEqual(b.model, 'g-cheap');
  assert.ok(['g-mid', 'claude-mock'].includes(b.model), `x-bursar-model ${b.model}`);
  assert.equal(data.model, b.model);
  assert.equal(data.choices[0].message.content, CONTENT[up(b.model)]);
  assert.equal(b.bucket, 'general');
  const st = await mock.stats();
  assert.equal(h.mockCount(st, up('g-cheap'), 500), h.mockCount(before, up('g-cheap'), 500) + 1);
  assert.equal(h.mockCount(st, up(b.model), 200), h.mockCount(before, up(b.model), 200) + 1);
  // the provider error and the model that served, on the one decision
  const rows = await h.eventually(() => ctl.export(),
                                  (r) => r.some((d) => d.decision_id === b.id && d.status === 'done'));
  const d = findDecision(rows, b.id);
  assert.equal(d.model, 'g-cheap');
  assert.ok(d.provider_error, 'the decision has no provider_error');
  assert.equal(d.served_model, b.model);
  assert.equal(d.status, 'done');
  assert.equal(d.outcome, 1);
  ids.fallback = b.id;
});

test('an escalation after an answer that fails the JSON schema', async () => {
  const schema = {
    type: 'object',
    properties: { name: { type: 'string' }, age: { type: 'integer' } },
    required: ['name', 'age'],
    additionalProperties: false,
  };
  const { data, response } = await client.chat.completions.create({
    model: 'bursar/extraction',
    messages: [{ role: 'user', content: 'Extract the person: Ada, 36.' }],
    response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema } },
  }).withResponse();
  const b = bursarHeaders(response);
  // x-cheap's text fails the schema; x-good's JSON passes
  assert.equal(data.choices[0].message.content, CONTENT[up('x-good')]);
  assert.deepEqual(JSON.parse(data.choices[0].message.content), { name: 'Ada', age: 36 });
  assert.equal(data.model, 'x-good');
  assert.equal(b.model, 'x-good');
  assert.equal(b.bucket, 'extraction');
  assert.equal(b.escalations, '1');
  const st = await mock.stats();
  assert.equal(h.mockCount(st, up('x-cheap'), 200), 1);
  assert.equal(h.mockCount(st, up('x-good'), 200), 1);
  // bursard's export: two decisions, the second escalating the first
  const rows = await h.eventually(
    () => ctl.export(),
    (r) => r.filter((d) => d.bucket === 'extraction' && d.status === 'done').length >= 2);
  const second = findDecision(rows, b.id);
  assert.equal(second.model, 'x-good');
  assert.equal(second.step, 1);
  assert.ok(second.escalates, 'the served decision escalates nothing');
  const first = findDecision(rows, second.escalates);
  assert.equal(first.model, 'x-cheap');
  assert.equal(first.bucket, 'extraction');
  assert.equal(first.step, 0);
  assert.equal(second.escalates_seq, first.seq);
  assert.equal(first.outcome, 0); // invalid
  assert.equal(second.outcome, 1);
  assert.equal(rows.filter((d) => d.bucket === 'extraction').length, 2);
  ids.escalated = b.id;
});

test('errors through the SDK: NotFoundError for an unknown bucket or model, AuthenticationError for a wrong key', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'bursar/no-such-bucket', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 404);
      assert.equal(e.type, 'not_found_error');
      assert.match(e.message, /no-such-bucket/); // the gateway's message names it
      return true;
    });
  await assert.rejects(
    client.chat.completions.create({
      model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, /no-such-model/);
      return true;
    });
  const wrong = new OpenAI({
    baseURL: `${gw.url}/v1`, apiKey: `bsk-${'A'.repeat(43)}`, maxRetries: 0 });
  await assert.rejects(
    wrong.chat.completions.create({
      model: 'bursar/general', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 401);
      assert.equal(e.type, 'authentication_error');
      return true;
    });
});

async function postFeedback(body) {
  const r = await fetch(`${gw.url}/v1/feedback`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

test('a correction through /v1/feedback, seen in bursard\'s export', async () => {
  assert.ok(ids.plain, 'the plain completion gave no decision id');
  // the gateway reported the plain completion's outcome: a success
  let rows = await h.eventually(() => ctl.export(),
                                (r) => r.some((d) => d.decision_id === ids.plain && d.status === 'done'));
  let d = findDecision(rows, ids.plain);
  assert.equal(d.status, 'done');
  assert.equal(d.reward, 1);
  assert.equal(d.corrected, false);

  const r = await postFeedback({ decision_id: ids.plain, correction: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { ok: true });
  const again = await postFeedback({ decision_id: ids.plain, correction: true });
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.deepEqual(again.body, { ok: true, duplicate: true });

  rows = await h.eventually(() => ctl.export(),
                            (r) => findDecision(r, ids.plain).corrected === true);
  d = findDecision(rows, ids.plain);
  assert.equal(d.corrected, true);
  assert.equal(d.reward, 0); // the success amended into a failure
  assert.equal(d.outcome, 1); // as reported

  // an altered id: 404 unknown_decision; no decision id: 400
  const c = ids.plain[5] === 'A' ? 'B' : 'A';
  const forged = ids.plain.slice(0, 5) + c + ids.plain.slice(6);
  const bad = await postFeedback({ decision_id: forged, correction: true });
  assert.equal(bad.status, 404, JSON.stringify(bad.body));
  assert.equal(bad.body.error.code, 'unknown_decision');
  const none = await postFeedback({ correction: true });
  assert.equal(none.status, 400, JSON.stringify(none.body));
  assert.match(none.body.error.message, /decision_id/);
});

test('x-bursar-outcome: client: the application reports the outcome through /v1/feedback', async () => {
  const { data, response } = await client.chat.completions.create(
    { model: 'bursar/general', messages: [{ role: 'user', content: 'Say hello; I will judge.' }] },
    { headers: { 'x-bursar-outcome': 'client' } }).withResponse();
  assert.equal(data.choices[0].message.content, CONTENT[up('g-cheap')]);
  const id = bursarHeaders(response).id;
  assert.ok(id, 'x-bursar-decision-id is missing');
  ids.client = id;
  // the gateway leaves the outcome to the application
  await h.sleep(300);
  let d = findDecision(await ctl.export(), id);
  assert.equal(d.status, 'pending');
  const r = await postFeedback({ decision_id: id, reward: 0.25, cost_usd: 0.0005,
                                 latency_ms: 120, model: 'g-cheap' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { ok: true });
  const rows = await h.eventually(() => ctl.export(),
                                  (x) => findDecision(x, id).status === 'done');
  d = findDecision(rows, id);
  assert.equal(d.status, 'done');
  assert.equal(d.outcome, 0.25);
  assert.equal(d.reward, 0.25);
  assert.equal(d.cost_usd, 0.0005);
  assert.equal(d.cost_source, 'reported');
  // a reward out of range: 400 naming it
  const bad = await postFeedback({ decision_id: id, reward: 7 });
  assert.equal(bad.status, 400, JSON.stringify(bad.body));
  assert.match(bad.body.error.message, /reward/);
});

// Needs the controller's tenants (branch "tenant"): the tenant of the
// application key is passed with every choose and kept in the export.
test('every decision the gateway asked for carries the key\'s tenant', async () => {
  const rows = await ctl.export();
  const mine = Object.values(ids);
  assert.ok(mine.length >= 5, `decision ids seen: ${mine.length}`);
  for (const id of mine) assert.equal(findDecision(rows, id).tenant, 'acme', `decision ${id}`);
  for (const d of rows) assert.equal(d.tenant, 'acme', `decision ${d.decision_id || d.local_id}`);
});

test('the gateway exits 0 on SIGTERM (no leak under the sanitizer build)', async () => {
  const st = await h.stop(gw.child);
  assert.deepEqual(st, { code: 0, signal: null },
                   `bursar-gateway's log:\n${h.logTail(gw.child.log)}`);
  const cst = await h.stop(ctl.child);
  assert.deepEqual(cst, { code: 0, signal: null });
});
