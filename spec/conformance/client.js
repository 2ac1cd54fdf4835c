'use strict';
// A scripted LittleHorse client for specs that drive a server (the dev server) with the
// official npm package `littlehorse-client` 0.14.0 (spec/conformance/package-lock.json):
// LHConfig.from(...).getClient(), its nice-grpc client and ts-proto codec. For RPCs and
// fields 0.14.0 lacks, a step can send request bytes it is given and decode the reply with
// the independent decoder (rawpb.js) instead.
//
//   node client.js --target HOST:PORT [--parent PID] < program.json
//
// program.json: { "steps": [ step, ... ] }, run in order; prints one JSON array with one
// result per step. A step is one of
//   { "sdk": "putCorrelatedEvent", "req": {...} }
//       the official client's method (camelCase, as LittleHorseDefinition names it); req is
//       its request object (ts-proto field names; { "$hex": "..." } stands for a Buffer).
//       Result: { "code": "OK", "reply": <the official decoding, JSON-safe> }.
//   { "raw": "/littlehorse.LittleHorse/SearchCorrelatedEvent", "req_hex": "...",
//     "reply": "CorrelatedEventIdList" }
//       sends req_hex as the request message (grpc-js, no codec) and decodes the reply with
//       rawpb.js as type `reply`; when 0.14.0 has that type, its decoding too. Instead of
//       req_hex, "encode": "PutCorrelatedEventRequest", "req": {...} has the official
//       encoder make the request bytes (Type.encode(Type.fromPartial(req))).
//       Result: { "code": "OK", "reply_hex", "raw": {...}, "official": {...} }.
//   { "until": step, "code": "NOT_FOUND", "timeout_ms": 10000 }
//       repeats `step` (every 20 ms) until its result has that code, or the time is up;
//       the result is the last one, with "tries".
// A failed call's result is { "code": "<STATUS_NAME>", "message": "..." } (the gRPC status
// and its details as received). JSON-safe: bytes as { "hex" }, int64 as decimal strings,
// -0 / NaN / Infinity as { "number": "..." }, Dates as ISO strings.
const path = require('path');
const { LHConfig } = require('littlehorse-client');
const proto = require('littlehorse-client/proto');
const raw = require('./rawpb');

const niceDir = path.dirname(require.resolve('nice-grpc'));
const grpc = require(require.resolve('@grpc/grpc-js', { paths: [niceDir] }));
const { Status } = require('nice-grpc');
const protoDir = path.dirname(require.resolve('littlehorse-client/proto'));
const Long = require(require.resolve('long', { paths: [protoDir] }));

const { hex } = raw;

function jsonSafe(v) {
  if (v instanceof Uint8Array) return { hex: hex(v) };
  if (v instanceof Date) return v.toISOString();
  if (Long.isLong(v)) return v.toString();
  if (typeof v === 'number' && (Object.is(v, -0) || !Number.isFinite(v))) return { number: String(Object.is(v, -0) ? '-0' : v) };
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (v && typeof v === 'object') {
    const o = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = jsonSafe(x);
    return o;
  }
  return v;
}

// Request objects from JSON: { "$hex": "..." } -> Buffer.
function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === 'object') {
    if (typeof v.$hex === 'string' && Object.keys(v).length === 1) return Buffer.from(v.$hex, 'hex');
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = revive(x);
    return o;
  }
  return v;
}

const statusName = (code) => Status[code] || String(code);

async function sdkStep(client, step) {
  const method = client[step.sdk];
  if (typeof method !== 'function') return { code: 'NO_SUCH_SDK_METHOD', message: `0.14.0 has no ${step.sdk}` };
  try {
    const reply = await method.call(client, revive(step.req || {}), { deadline: Date.now() + 10000 });
    return { code: 'OK', reply: jsonSafe(reply) };
  } catch (e) {
    if (e && e.code !== undefined && e.details !== undefined) return { code: statusName(e.code), message: e.details };
    throw e;
  }
}

function requestBytes(step) {
  if (!step.encode) return Buffer.from(step.req_hex || '', 'hex');
  const T = proto[step.encode];
  return Buffer.from(T.encode(T.fromPartial(revive(step.req || {}))).finish());
}

function rawStep(channel, step) {
  return new Promise((resolve) => {
    const identity = (x) => x;
    channel.makeUnaryRequest(step.raw, identity, identity, requestBytes(step),
      new grpc.Metadata(), { deadline: Date.now() + 10000 }, (err, bytes) => {
        if (err) {
          resolve({ code: statusName(err.code), message: err.details });
          return;
        }
        const out = { code: 'OK', reply_hex: hex(bytes) };
        try {
          out.raw = raw.decode(step.reply, bytes);
        } catch (e) {
          out.raw_error = e.message;
        }
        const official = proto[step.reply];
        if (official && typeof official.decode === 'function') {
          try {
            out.official = jsonSafe(official.decode(bytes));
          } catch (e) {
            out.official_error = e.message;
          }
        }
        resolve(out);
      });
  });
}

async function runStep(client, channel, step) {
  if (step.sdk) return sdkStep(client, step);
  if (step.raw) return rawStep(channel, step);
  if (step.until) {
    const deadline = Date.now() + (step.timeout_ms || 10000);
    for (let tries = 1; ; tries++) {
      const r = await runStep(client, channel, step.until);
      if (r.code === step.code || Date.now() > deadline) return { ...r, tries };
      await new Promise((res) => setTimeout(res, 20));
    }
  }
  return { code: 'BAD_STEP', message: JSON.stringify(step) };
}

async function main() {
  const args = process.argv.slice(2);
  let target = '';
  let parent = 0;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--target') target = args[++i];
    else if (args[i] === '--parent') parent = Number(args[++i]);
    else { console.error(`unknown argument ${args[i]}`); process.exit(2); }
  }
  const colon = target.lastIndexOf(':');
  if (colon < 0) { console.error('--target HOST:PORT is required'); process.exit(2); }
  // Never outlive the spec that started us, even if it dies unclean.
  if (parent > 0) setInterval(() => { try { process.kill(parent, 0); } catch (e) { process.exit(3); } }, 500).unref();

  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const program = JSON.parse(Buffer.concat(chunks).toString('utf8'));

  const config = LHConfig.from({ apiHost: target.slice(0, colon), apiPort: target.slice(colon + 1) });
  const client = config.getClient();
  const channel = new grpc.Client(target, grpc.credentials.createInsecure());
  const results = [];
  for (const step of program.steps) results.push(await runStep(client, channel, step));
  channel.close();
  process.stdout.write(JSON.stringify(results) + '\n');
  process.exit(0);
}

main().catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
