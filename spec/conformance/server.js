'use strict';
// An independent LittleHorse peer for spec/conformance_spec.lua, built on the official npm
// package `littlehorse-client` 0.14.0: its nice-grpc service definition
// (`LittleHorseDefinition`, served with nice-grpc's `createServer`) and its generated ts-proto
// codec (`littlehorse-client/proto`). It implements PutExternalEvent, and records and
// answers the event API's newer RPCs (below).
//
//   node server.js [--host 127.0.0.1] [--port 0] [--parent PID]
//   prints "LISTENING 127.0.0.1:PORT"; exits on SIGTERM/SIGINT, or once process PID is gone.
//
// What it does with a PutExternalEventRequest, chosen by the request's wf_run_id.id:
//
//   "reply"  The request's content is a `str` holding a JSON reply description (below); the
//            reply is an ExternalEvent built from it with the official encoders.
//   other    Echo: the reply is an ExternalEvent (official encoder) with the request's id and
//            guid, whose content is a `str` holding a JSON description of what this peer
//            decoded (below). The spec reads it with lua-cjson, not with our JSON codec.
//
// The description of a request carries two decodings of the same bytes:
//   official       PutExternalEventRequest.decode() of the official codec, made JSON-safe
//                  (bytes as hex). The 0.14.0 codec predates VariableValue members 9-13
//                  (wf_run_id, utc_timestamp, struct, array, map) and skips them as unknown
//                  fields, and its int64 decoding throws beyond 2^53 ("Value is larger than
//                  Number.MAX_SAFE_INTEGER"); that error is reported as official_error.
//   raw            An independent decoding of the raw bytes (rawpb.js: protobufjs's Reader, the wire
//                  runtime underneath the official codec, not its generated code), written
//                  from the field tables of littlehorse-protocol.md section 2: all 13 members,
//                  int64 as exact decimal strings, doubles as their 8 wire bytes (hex), every
//                  string and bytes field also as hex, unknown fields and wrong wire types
//                  reported. raw_hex is the whole request.
//   json_check     For json_obj / json_arr text: whether JavaScript's JSON.parse accepts it
//                  (an independent RFC 8259 check), whether it is an object or an array, and
//                  what JSON.parse read (re-serialized by JSON.stringify, as `value`).
//   metadata       The request's gRPC metadata (tenantid).
//
// The newer RPCs (PutCorrelatedEvent, GetCorrelatedEvent, DeleteCorrelatedEvent,
// PutExternalEventDef, GetExternalEventDef, DeleteExternalEventDef, ListExternalEvents,
// SearchExternalEvent, SearchCorrelatedEvent, SearchExternalEventDef; the two that 0.14.0
// lacks are added to its service definition): each request is recorded under its method as
// { method, raw_hex, official (the 0.14.0 decoder's reading, when it has the type), raw (the
// independent decoding), metadata }, and answered with the next reply queued for that method,
// else the smallest valid reply. Read a method's last request with GetExternalEventDef of the
// name "last:<Method>": the reply's id.name is that record as JSON. Queue a reply with a
// PutExternalEvent to WfRun "queue-reply" whose content is a str holding JSON
// { method =, type =, msg =, parts = }: the official encoder writes `msg` (a ts-proto object;
// { "$hex": ... } for bytes) as `type`, then each part is appended as a field (valid protobuf:
// field order is free), for what 0.14.0 cannot write: { field =, type =, msg = } (an official
// sub-message), { field =, value = V } (a VariableValue, as below), { field =, hex = }
// (bytes), { field =, varint = } or { field =, parts = [...] } (a message made of parts).
//
// Reply description (JSON): { content = V, created_at = "ISO" | {seconds = "s", nanos = n},
//   thread_run_number = n, node_run_position = n, claimed = b, guid = "g" } where V is
//   {} (NULL) | {json_obj = "text"} | {json_arr = "text"} | {double = x} | {double_bits = "hex"}
//   | {bool = b} | {str = "s"} | {int = "decimal"} | {bytes_hex = "hex"}
//   | {wf_run_id = {id =, parent_wf_run_id =}} | {utc_timestamp = {seconds = "s", nanos = n}}
//   | {array = [V...]} | {map = [[V, V]...]} | {struct = {name =, version =, fields = {k = V}}}.
// Members 2-8 are written by the official VariableValue.encode (int64 from a Long, so all
// 64 bits survive). Members 9-13 do not exist in 0.14.0: they are written as tag + length
// around the official WfRunId / Timestamp / StructDefId encoders, recursively for nested
// values. created_at given as an ISO string goes through the official ExternalEvent encoder
// (millisecond precision, and a pre-1970 instant comes out with negative nanos: a bug of the
// 0.14.0 codec); given as {seconds, nanos} it is written with the official Timestamp encoder.
const path = require('path');
const { createServer, ServerError, Status } = require('nice-grpc');
const proto = require('littlehorse-client/proto');
const raw = require('./rawpb');

// The wire runtime and Long class the generated code itself uses (same module instances).
const protoDir = path.dirname(require.resolve('littlehorse-client/proto'));
const m0 = require(require.resolve('protobufjs/minimal', { paths: [protoDir] }));
const Long = require(require.resolve('long', { paths: [protoDir] }));
const { Timestamp } = require(path.join(protoDir, 'google', 'protobuf', 'timestamp.js'));
const { LittleHorseDefinition, PutExternalEventRequest, ExternalEvent, VariableValue, WfRunId,
        StructDefId } = proto;

const { hex } = raw;

// ------------------------------------------------------------------ independent decoding

// raw.decode (rawpb.js): protobufjs's Reader driven by field tables from the protocol
// document.

// The official decoding, made JSON-safe.
function jsonSafe(v) {
  if (v instanceof Uint8Array) return { hex: hex(v) };
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

function jsonCheck(text) {
  try {
    const v = JSON.parse(text);
    return { ok: true, type: Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v, value: JSON.stringify(v) };
  } catch (e) {
    return { ok: false, error: e.message };
  }
}

function describe(bytes, metadata) {
  const d = { raw_hex: hex(bytes) };
  try {
    d.official = jsonSafe(PutExternalEventRequest.decode(bytes));
  } catch (e) {
    d.official_error = e.message;
  }
  try {
    d.raw = raw.decode('PutExternalEventRequest', bytes);
  } catch (e) {
    d.raw_error = e.message;
  }
  const c = d.raw && d.raw.content;
  if (c && (c.json_obj || c.json_arr)) d.json_check = jsonCheck((c.json_obj || c.json_arr).utf8);
  d.metadata = {};
  for (const [k, v] of metadata) d.metadata[k] = v;
  return d;
}

// ------------------------------------------------------------------ reply encoding

function toLong(x) { return typeof x === 'string' ? Long.fromString(x) : Long.fromNumber(x); }

const OFFICIAL = ['json_obj', 'json_arr', 'double', 'double_bits', 'bool', 'str', 'int', 'bytes_hex'];

// Writes the VariableValue described by v (not its tag) to writer w.
function writeValue(v, w) {
  const keys = Object.keys(v);
  if (keys.length > 1) throw new Error(`a value description has one member, got ${keys.join(', ')}`);
  const k = keys[0];
  if (k === undefined) return w; // NULL: an empty VariableValue
  if (OFFICIAL.includes(k)) {
    const m = {};
    if (k === 'json_obj') m.jsonObj = v.json_obj;
    else if (k === 'json_arr') m.jsonArr = v.json_arr;
    else if (k === 'double') m.double = v.double;
    else if (k === 'double_bits') m.double = Buffer.from(v.double_bits, 'hex').readDoubleLE(0);
    else if (k === 'bool') m.bool = v.bool;
    else if (k === 'str') m.str = v.str;
    else if (k === 'int') m.int = toLong(v.int);
    else if (k === 'bytes_hex') m.bytes = Buffer.from(v.bytes_hex, 'hex');
    return VariableValue.encode(m, w);
  }
  // Members 9-13: newer than 0.14.0; tag + length around official sub-encoders.
  switch (k) {
    case 'wf_run_id':
      return WfRunId.encode(wfRunId(v.wf_run_id), w.uint32((9 << 3) | 2).fork()).ldelim();
    case 'utc_timestamp':
      return Timestamp.encode(ts(v.utc_timestamp), w.uint32((10 << 3) | 2).fork()).ldelim();
    case 'struct': {
      const s = v.struct;
      w.uint32((11 << 3) | 2).fork();
      StructDefId.encode({ name: s.name, version: s.version || 0 }, w.uint32((1 << 3) | 2).fork()).ldelim();
      w.uint32((2 << 3) | 2).fork(); // InlineStruct
      for (const [name, fv] of Object.entries(s.fields || {})) {
        w.uint32((1 << 3) | 2).fork(); // FieldsEntry
        w.uint32((1 << 3) | 2).string(name);
        w.uint32((2 << 3) | 2).fork(); // StructField
        writeValue(fv, w.uint32((1 << 3) | 2).fork()).ldelim();
        w.ldelim();
        w.ldelim();
      }
      w.ldelim();
      return w.ldelim();
    }
    case 'array':
      w.uint32((12 << 3) | 2).fork();
      for (const item of v.array) writeValue(item, w.uint32((1 << 3) | 2).fork()).ldelim();
      return w.ldelim();
    case 'map':
      w.uint32((13 << 3) | 2).fork();
      for (const [key, val] of v.map) {
        w.uint32((1 << 3) | 2).fork();
        writeValue(key, w.uint32((1 << 3) | 2).fork()).ldelim();
        writeValue(val, w.uint32((2 << 3) | 2).fork()).ldelim();
        w.ldelim();
      }
      return w.ldelim();
    default:
      throw new Error(`unknown value member ${k}`);
  }
}

function wfRunId(x) {
  return x && { id: x.id, parentWfRunId: x.parent_wf_run_id ? wfRunId(x.parent_wf_run_id) : undefined };
}

function ts(x) { return { seconds: toLong(x.seconds), nanos: x.nanos || 0 }; }

// An ExternalEvent: the official encoder for everything it knows, then (valid protobuf: field
// order is free) the content members it lacks and a full-precision created_at.
function encodeReply(desc, req) {
  const w = m0.Writer.create();
  const ev = {
    id: { wfRunId: req.wfRunId, externalEventDefId: req.externalEventDefId, guid: desc.guid !== undefined ? desc.guid : (req.guid || '') },
    claimed: !!desc.claimed,
    threadRunNumber: desc.thread_run_number,
    nodeRunPosition: desc.node_run_position,
  };
  if (typeof desc.created_at === 'string') ev.createdAt = desc.created_at;
  const content = desc.content;
  ExternalEvent.encode(ev, w);
  if (content) writeValue(content, w.uint32((3 << 3) | 2).fork()).ldelim();
  if (desc.created_at && typeof desc.created_at === 'object') {
    Timestamp.encode(ts(desc.created_at), w.uint32((2 << 3) | 2).fork()).ldelim();
  }
  return w.finish();
}

// ------------------------------------------------------------------ the newer RPCs

// method -> [request type, reply type]
const NEWER = {
  putCorrelatedEvent: ['PutCorrelatedEventRequest', 'CorrelatedEvent'],
  getCorrelatedEvent: ['CorrelatedEventId', 'CorrelatedEvent'],
  deleteCorrelatedEvent: ['DeleteCorrelatedEventRequest', 'Empty'],
  putExternalEventDef: ['PutExternalEventDefRequest', 'ExternalEventDef'],
  getExternalEventDef: ['ExternalEventDefId', 'ExternalEventDef'],
  deleteExternalEventDef: ['DeleteExternalEventDefRequest', 'Empty'],
  listExternalEvents: ['ListExternalEventsRequest', 'ExternalEventList'],
  searchExternalEvent: ['SearchExternalEventRequest', 'ExternalEventIdList'],
  searchCorrelatedEvent: ['SearchCorrelatedEventRequest', 'CorrelatedEventIdList'],
  searchExternalEventDef: ['SearchExternalEventDefRequest', 'ExternalEventDefIdList'],
};
const RPC_NAME = (m) => m[0].toUpperCase() + m.slice(1);

const lastRequest = {}; // RPC name -> record
const queued = {};      // RPC name -> [reply bytes]

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

// Appends the parts (see the header) to writer w.
function writeParts(parts, w) {
  for (const p of parts || []) {
    if (p.type) {
      const T = proto[p.type];
      if (!T) throw new Error(`0.14.0 has no ${p.type}`);
      T.encode(T.fromPartial(revive(p.msg || {})), w.uint32((p.field << 3) | 2).fork()).ldelim();
    } else if (p.value) {
      writeValue(p.value, w.uint32((p.field << 3) | 2).fork()).ldelim();
    } else if (p.hex !== undefined) {
      w.uint32((p.field << 3) | 2).bytes(Buffer.from(p.hex, 'hex'));
    } else if (p.varint !== undefined) {
      w.uint32(p.field << 3).int64(toLong(p.varint));
    } else if (p.parts) {
      writeParts(p.parts, w.uint32((p.field << 3) | 2).fork()).ldelim();
    } else {
      throw new Error(`a part needs type, value, hex, varint or parts: ${JSON.stringify(p)}`);
    }
  }
  return w;
}

function encodeDescribed(desc) {
  const w = m0.Writer.create();
  if (desc.msg) {
    const T = proto[desc.type];
    if (!T) throw new Error(`0.14.0 has no ${desc.type}: give its fields as parts`);
    T.encode(T.fromPartial(revive(desc.msg)), w);
  }
  writeParts(desc.parts, w);
  return w.finish();
}

function record(rpc, reqType, bytes, metadata) {
  const d = { method: rpc, raw_hex: hex(bytes), metadata: {} };
  const T = proto[reqType];
  if (T && typeof T.decode === 'function') {
    try { d.official = jsonSafe(T.decode(bytes)); } catch (e) { d.official_error = e.message; }
  }
  try { d.raw = raw.decode(reqType, bytes); } catch (e) { d.raw_error = e.message; }
  for (const [k, v] of metadata) d.metadata[k] = v;
  lastRequest[rpc] = d;
}

function defaultReply(replyType) {
  if (replyType === 'Empty' || replyType === 'CorrelatedEventIdList') return Buffer.alloc(0);
  return proto[replyType].encode(proto[replyType].fromPartial({})).finish();
}

function newerHandler(method) {
  const [reqType, replyType] = NEWER[method];
  const rpc = RPC_NAME(method);
  return async ({ bytes }, context) => {
    if (rpc === 'GetExternalEventDef') {
      const id = proto.ExternalEventDefId.decode(bytes);
      if (id.name.startsWith('last:')) {
        const rec = lastRequest[id.name.slice(5)];
        if (!rec) throw new ServerError(Status.NOT_FOUND, `no ${id.name.slice(5)} request recorded`);
        return proto.ExternalEventDef.encode(proto.ExternalEventDef.fromPartial({ id: { name: JSON.stringify(rec) } })).finish();
      }
    }
    record(rpc, reqType, bytes, context.metadata);
    const q = queued[rpc];
    return q && q.length ? q.shift() : defaultReply(replyType);
  };
}

function queueReply(text) {
  const desc = JSON.parse(text);
  if (!NEWER[desc.method[0].toLowerCase() + desc.method.slice(1)]) throw new Error(`not a newer RPC: ${desc.method}`);
  (queued[desc.method] = queued[desc.method] || []).push(Buffer.from(encodeDescribed(desc)));
}

// ------------------------------------------------------------------ the service

// The official definition, with PutExternalEvent's request type wrapped so the handler also
// gets the raw bytes (the official decode runs inside, its failure is recorded, not fatal),
// and its response type taking bytes this peer already encoded with the official code.
const RAW_REQUEST = {
  decode(bytes) { return { bytes: Buffer.from(bytes) }; },
  encode() { throw new Error('server side only'); },
};
const RAW_RESPONSE = {
  encode(bytes) { return { finish: () => bytes }; },
  decode() { throw new Error('server side only'); },
};
const methods = { ...LittleHorseDefinition.methods };
methods.putExternalEvent = { ...methods.putExternalEvent, requestType: RAW_REQUEST, responseType: RAW_RESPONSE };
for (const m of Object.keys(NEWER)) {
  const base = methods[m] || { name: RPC_NAME(m), requestStream: false, responseStream: false, options: {} };
  methods[m] = { ...base, requestType: RAW_REQUEST, responseType: RAW_RESPONSE };
}
const definition = { ...LittleHorseDefinition, methods };

const impl = {};
for (const name of Object.keys(methods)) {
  impl[name] = async () => { throw new ServerError(Status.UNIMPLEMENTED, `${name} is not implemented by the conformance peer`); };
}
for (const m of Object.keys(NEWER)) impl[m] = newerHandler(m);
impl.putExternalEvent = async ({ bytes }, context) => {
  let req;
  try {
    req = PutExternalEventRequest.decode(bytes);
  } catch (e) {
    req = null; // e.g. an int64 beyond 2^53: described below, echoed with an empty id
  }
  const d = describe(bytes, context.metadata);
  const wf = d.raw && d.raw.wf_run_id && d.raw.wf_run_id.id && d.raw.wf_run_id.id.utf8;
  const idOf = () => ({
    wfRunId: req ? req.wfRunId : { id: wf || '' },
    externalEventDefId: req ? req.externalEventDefId : { name: '' },
    guid: req ? req.guid : undefined,
  });
  if (wf === 'queue-reply') {
    try {
      queueReply(req.content.str);
    } catch (e) {
      throw new ServerError(Status.INVALID_ARGUMENT, `queue-reply: ${e.message}`);
    }
    return encodeReply({ content: { str: 'queued' } }, idOf());
  }
  if (wf === 'reply') {
    let desc;
    try {
      desc = JSON.parse(req.content.str);
    } catch (e) {
      throw new ServerError(Status.INVALID_ARGUMENT, `reply: content must be a str with a JSON reply description (${e.message})`);
    }
    try {
      return encodeReply(desc, idOf());
    } catch (e) {
      throw new ServerError(Status.INVALID_ARGUMENT, `reply: ${e.message}`);
    }
  }
  return encodeReply({ content: { str: JSON.stringify(d) } }, idOf());
};

async function main() {
  const args = process.argv.slice(2);
  let host = '127.0.0.1';
  let port = 0;
  let parent = 0;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--host') host = args[++i];
    else if (args[i] === '--port') port = Number(args[++i]);
    else if (args[i] === '--parent') parent = Number(args[++i]);
    else { console.error(`unknown argument ${args[i]}`); process.exit(2); }
  }
  const server = createServer();
  server.add(definition, impl);
  const bound = await server.listen(`${host}:${port}`);
  process.stdout.write(`LISTENING ${host}:${bound}\n`);
  const stop = () => { server.forceShutdown(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Never outlive the spec that started us (the busted process), even if it dies unclean.
  if (parent > 0) setInterval(() => { try { process.kill(parent, 0); } catch (e) { stop(); } }, 500);
}

main().catch((e) => { console.error(e); process.exit(1); });
