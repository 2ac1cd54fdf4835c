'use strict';
// An independent protobuf decoder for the conformance peers: protobufjs's Reader (the wire
// runtime underneath the official codec, not its generated code) driven by field tables
// written from shared/docs/littlehorse-protocol.md (sections 2, 2.5 and 8), for every message the
// project speaks, including those the official 0.14.0 codec lacks. It reports what the
// official decoder would silently skip: unknown fields, wrong wire types, a oneof with two
// members, lengths that overrun.
//
//   const raw = require('./rawpb');
//   raw.decode('ExternalEventDef', bytes) -> { id: { name: { utf8, hex } }, ... , $problems? }
//
// Values: string -> { utf8, hex }; bytes -> { hex }; double -> { value, hex } (the 8 wire
// bytes); bool; int64 -> exact decimal string; int32 -> number; enum -> its name (or the
// number when unknown); a message -> an object; repeated -> an array. A message with a oneof
// gets `$member` (the member set last, or null).
const path = require('path');

const protoDir = path.dirname(require.resolve('littlehorse-client/proto'));
const m0 = require(require.resolve('protobufjs/minimal', { paths: [protoDir] }));

const hex = (u8) => Buffer.from(u8).toString('hex');

const WIRE = { VARINT: 0, I64: 1, LEN: 2, I32: 5 };
const SCALAR_WIRE = { string: WIRE.LEN, bytes: WIRE.LEN, double: WIRE.I64, bool: WIRE.VARINT,
                      int64: WIRE.VARINT, int32: WIRE.VARINT, VariableType: WIRE.VARINT };
const ENUMS = {
  VariableType: ['JSON_OBJ', 'JSON_ARR', 'DOUBLE', 'BOOL', 'STR', 'INT', 'BYTES', 'WF_RUN_ID', 'TIMESTAMP'],
};

// type -> { field number: [name, kind, repeated] }, plus $oneof: the numbers in its oneof.
const S = {};
S.WfRunId = { 1: ['id', 'string'], 2: ['parent_wf_run_id', 'WfRunId'] };
S.ExternalEventDefId = { 1: ['name', 'string'] };
S.ExternalEventId = { 1: ['wf_run_id', 'WfRunId'], 2: ['external_event_def_id', 'ExternalEventDefId'],
                      3: ['guid', 'string'] };
S.CorrelatedEventId = { 1: ['key', 'string'], 2: ['external_event_def_id', 'ExternalEventDefId'] };
S.NodeRunId = { 1: ['wf_run_id', 'WfRunId'], 2: ['thread_run_number', 'int32'], 3: ['position', 'int32'] };
S.StructDefId = { 1: ['name', 'string'], 2: ['version', 'int32'] };
S.Timestamp = { 1: ['seconds', 'int64'], 2: ['nanos', 'int32'] };
S.Empty = {};
S.VariableValue = {
  2: ['json_obj', 'string'], 3: ['json_arr', 'string'], 4: ['double', 'double'],
  5: ['bool', 'bool'], 6: ['str', 'string'], 7: ['int', 'int64'], 8: ['bytes', 'bytes'],
  9: ['wf_run_id', 'WfRunId'], 10: ['utc_timestamp', 'Timestamp'], 11: ['struct', 'Struct'],
  12: ['array', 'Array'], 13: ['map', 'Map'],
  $oneof: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
};
S.Struct = { 1: ['struct_def_id', 'StructDefId'], 2: ['struct', 'InlineStruct'] };
S.InlineStruct = { 1: ['fields', 'InlineStruct.FieldsEntry', true] };
S['InlineStruct.FieldsEntry'] = { 1: ['key', 'string'], 2: ['value', 'StructField'] };
S.StructField = { 1: ['value', 'VariableValue'], 2: ['masked', 'bool'] };
S.Array = { 1: ['items', 'VariableValue', true], 2: ['element_type', 'TypeDefinition'] };
S.Map = { 1: ['entries', 'Map.Entry', true], 2: ['map_type', 'InlineMapDef'] };
S['Map.Entry'] = { 1: ['key', 'VariableValue'], 2: ['value', 'VariableValue'] };
S.TypeDefinition = {
  1: ['primitive_type', 'VariableType'], 4: ['masked', 'bool'], 5: ['struct_def_id', 'StructDefId'],
  6: ['inline_array_def', 'InlineArrayDef'], 7: ['inline_struct_def', 'InlineStructDef'],
  8: ['inline_map_def', 'InlineMapDef'],
  $oneof: [1, 5, 6, 7, 8],
};
S.InlineArrayDef = { 1: ['array_type', 'TypeDefinition'] };
S.InlineMapDef = { 1: ['key_type', 'TypeDefinition'], 2: ['value_type', 'TypeDefinition'] };
S.InlineStructDef = { 1: ['fields', 'InlineStructDef.FieldsEntry', true] };
S['InlineStructDef.FieldsEntry'] = { 1: ['key', 'string'], 2: ['value', 'StructFieldDef'] };
S.StructFieldDef = { 1: ['field_type', 'TypeDefinition'], 2: ['default_value', 'VariableValue'],
                     3: ['is_nullable', 'bool'] };
S.ReturnType = { 1: ['return_type', 'TypeDefinition'] };
S.ExternalEventRetentionPolicy = { 1: ['seconds_after_put', 'int64'], $oneof: [1] };
S.CorrelatedEventConfig = { 1: ['ttl_seconds', 'int64'], 2: ['delete_after_first_correlation', 'bool'] };
S.ExternalEvent = {
  1: ['id', 'ExternalEventId'], 2: ['created_at', 'Timestamp'], 3: ['content', 'VariableValue'],
  4: ['thread_run_number', 'int32'], 5: ['node_run_position', 'int32'], 6: ['claimed', 'bool'],
};
S.CorrelatedEvent = {
  1: ['id', 'CorrelatedEventId'], 2: ['created_at', 'Timestamp'], 3: ['content', 'VariableValue'],
  4: ['external_events', 'ExternalEventId', true],
};
S.ExternalEventDef = {
  1: ['id', 'ExternalEventDefId'], 2: ['created_at', 'Timestamp'],
  3: ['retention_policy', 'ExternalEventRetentionPolicy'], 4: ['type_information', 'ReturnType'],
  5: ['correlated_event_config', 'CorrelatedEventConfig'],
};
S.PutExternalEventRequest = {
  1: ['wf_run_id', 'WfRunId'], 2: ['external_event_def_id', 'ExternalEventDefId'],
  3: ['guid', 'string'], 5: ['content', 'VariableValue'], 6: ['thread_run_number', 'int32'],
  7: ['node_run_position', 'int32'],
};
S.PutCorrelatedEventRequest = { 1: ['key', 'string'], 2: ['external_event_def_id', 'ExternalEventDefId'],
                                3: ['content', 'VariableValue'] };
S.PutExternalEventDefRequest = {
  1: ['name', 'string'], 2: ['retention_policy', 'ExternalEventRetentionPolicy'], 3: ['content_type', 'ReturnType'],
  4: ['correlated_event_config', 'CorrelatedEventConfig'],
};
S.DeleteExternalEventDefRequest = { 1: ['id', 'ExternalEventDefId'] };
S.DeleteCorrelatedEventRequest = { 1: ['id', 'CorrelatedEventId'] };
S.ListExternalEventsRequest = { 1: ['wf_run_id', 'WfRunId'], 2: ['bookmark', 'bytes'], 3: ['limit', 'int32'] };
S.SearchExternalEventRequest = {
  1: ['bookmark', 'bytes'], 2: ['limit', 'int32'], 3: ['earliest_start', 'Timestamp'], 4: ['latest_start', 'Timestamp'],
  5: ['external_event_def_id', 'ExternalEventDefId'], 6: ['is_claimed', 'bool'],
};
S.SearchCorrelatedEventRequest = {
  1: ['bookmark', 'bytes'], 2: ['limit', 'int32'], 3: ['earliest_start', 'Timestamp'], 4: ['latest_start', 'Timestamp'],
  5: ['external_event_def_id', 'ExternalEventDefId'], 6: ['has_external_events', 'bool'],
};
S.SearchExternalEventDefRequest = { 1: ['bookmark', 'bytes'], 2: ['limit', 'int32'], 3: ['prefix', 'string'] };
S.ExternalEventList = { 1: ['results', 'ExternalEvent', true], 2: ['bookmark', 'bytes'] };
S.ExternalEventIdList = { 1: ['results', 'ExternalEventId', true], 2: ['bookmark', 'bytes'] };
S.CorrelatedEventIdList = { 1: ['results', 'CorrelatedEventId', true], 2: ['bookmark', 'bytes'] };
S.ExternalEventDefIdList = { 1: ['results', 'ExternalEventDefId', true], 2: ['bookmark', 'bytes'] };

function decodeWith(type, reader, end) {
  const schema = S[type];
  if (!schema) throw new Error(`rawpb: no schema for ${type}`);
  const oneof = schema.$oneof || [];
  const out = {};
  const problems = [];
  const members = [];
  while (reader.pos < end) {
    const tag = reader.uint32();
    const no = tag >>> 3;
    const wt = tag & 7;
    const f = schema[no];
    if (!f) {
      problems.push(`unknown field ${no} (wire type ${wt})`);
      reader.skipType(wt);
      continue;
    }
    const [name, kind, repeated] = f;
    const want = SCALAR_WIRE[kind] !== undefined ? SCALAR_WIRE[kind] : WIRE.LEN;
    if (wt !== want) {
      problems.push(`field ${no} (${name}) has wire type ${wt}, expected ${want}`);
      reader.skipType(wt);
      continue;
    }
    let v;
    switch (kind) {
      case 'string': { const b = reader.bytes(); v = { utf8: Buffer.from(b).toString('utf8'), hex: hex(b) }; break; }
      case 'bytes': v = { hex: hex(reader.bytes()) }; break;
      case 'double': { const at = reader.pos; const d = reader.double(); v = { value: d, hex: hex(reader.buf.subarray(at, at + 8)) }; break; }
      case 'bool': { const n = reader.uint64(); v = !n.isZero(); break; }
      case 'int64': v = reader.int64().toString(); break;
      case 'int32': v = reader.int32(); break;
      default:
        if (ENUMS[kind]) { const n = reader.int32(); v = ENUMS[kind][n] || n; break; }
        { const len = reader.uint32(); v = decodeWith(kind, reader, reader.pos + len); }
    }
    if (repeated) (out[name] = out[name] || []).push(v);
    else {
      if (out[name] !== undefined && !oneof.includes(no)) problems.push(`field ${no} (${name}) repeated`);
      out[name] = v;
    }
    if (oneof.includes(no)) members.push(name);
  }
  if (reader.pos !== end) problems.push(`length overrun: ended at ${reader.pos}, expected ${end}`);
  if (oneof.length) {
    if (members.length > 1) problems.push(`oneof has ${members.length} members: ${members.join(', ')}`);
    out.$member = members.length ? members[members.length - 1] : null;
  }
  if (problems.length) out.$problems = problems;
  return out;
}

function decode(type, bytes) {
  const r = m0.Reader.create(bytes);
  return decodeWith(type, r, r.len);
}

module.exports = { decode, decodeWith, hex, schema: S };
