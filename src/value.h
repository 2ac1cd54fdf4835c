/* Lua value <-> littlehorse.VariableValue: the mapping table in docs/values.md, row by row.
 *
 * Plain Lua values map by type (nil, boolean, integer, float, string, table as JSON). Values a
 * plain Lua value cannot express (bytes, a forced int/double/str, native ARRAY/MAP/STRUCT,
 * timestamps, WfRunIds, raw JSON text) are "typed" tables made by the constructors in
 * lua/littlehorse/values.lua: { type = "<KIND>", value = ... } with the metatable stored in
 * the registry under lh_value_typed_mt_key. */
#ifndef LH_VALUE_H
#define LH_VALUE_H

#include "compat.h"
#include "context.h"
#include "path.h"
#include "type_definition.pb-c.h"

#define LH_VALUE_MAX_DEPTH 64
/* The deepest protobuf message nesting below a request (the content VariableValue is level
 * 1) that the server parses: protobuf-java's default recursion limit. Native values deeper
 * than that (lh.array: 2 levels each, lh.map: 3, lh.struct: 5) are refused when encoding. */
#define LH_VALUE_MAX_MSG_DEPTH 100
/* The field number of VariableValue's `str` member (see set_str in value.c). */
#define LH_VALUE_STR_FIELD 6

extern const char lh_value_typed_mt_key;

/* Create the typed-value metatable (once per state). */
void lh_value_register(lua_State *L);
void lh_value_push_typed_mt(lua_State *L);

/* Fill *vv from the Lua value at idx (nil and lh.null leave it unset, i.e. NULL; a `str` with
 * NUL bytes is carried as an unknown field, see set_str). Runs inside a conversion begun with
 * lh_keep_begin (keep.h): nested messages come from the context's arena, strings are kept until
 * lh_keep_end. Tables are read raw (no metamethod runs). Misuse raises, naming the path. */
void lh_value_to_pb(lua_State *L, int idx, lh_context *c, Littlehorse__VariableValue *vv,
                    const lh_path *path);

/* A WfRunId from a string ("id") or a table { id = , parent_wf_run_id = <same> }. */
Littlehorse__WfRunId *lh_wf_run_id_to_pb(lua_State *L, int idx, lh_context *c, const lh_path *path);

/* Validate a Lua string for a protobuf `string` field that is an id or a name (valid UTF-8,
 * no NUL byte, and non-empty if nonempty is set); returns it (not kept), its length in *len
 * (may be NULL), or raises naming the path. */
const char *lh_check_text(lua_State *L, int idx, const lh_path *path, int nonempty, size_t *len);
/* lh_check_text, then the string kept until lh_keep_end (keep.h). */
const char *lh_text_field(lua_State *L, lh_context *c, int idx, const lh_path *path, int nonempty);

/* Push the Lua value of vv, which protobuf-c unpacked into the arena a (strings are pushed
 * whole, NUL bytes included: lh_arena_pb_strlen): nil when unset (or lh.null when null_marker
 * is set, for items of native arrays, maps and structs, where nil cannot be stored; there,
 * bytes come back as lh.bytes(s), since no content_type tells them from strings). */
void lh_value_push(lua_State *L, const lh_arena *a, const Littlehorse__VariableValue *vv, int null_marker);
/* Push a JSON_OBJ / JSON_ARR member's text[0..n) (kind names it) as lh_value_push does: the
 * decoded value, or, for text that is not JSON, the typed raw text with its error. */
void lh_value_push_json(lua_State *L, const char *text, size_t n, const char *kind);
void lh_wf_run_id_push(lua_State *L, const lh_arena *a, const Littlehorse__WfRunId *id);

/* The kind of a VariableValue ("STR", "JSON_OBJ", ...), or NULL when unset. */
const char *lh_value_kind(const Littlehorse__VariableValue *vv);

#endif
