#include <stdio.h>
#include <string.h>
#include <math.h>
#include "value.h"
#include "json.h"
#include "utf8.h"
#include "timestamp.h"
#include "keep.h"
#include "pbwire.h"
#include "int64.h"

const char lh_value_typed_mt_key = 0;

void lh_value_push_typed_mt(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&lh_value_typed_mt_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
}

void lh_value_register(lua_State *L) {
  lh_value_push_typed_mt(L);
  int exists = lua_istable(L, -1);
  lua_pop(L, 1);
  if (exists) return;
  lua_pushlightuserdata(L, (void *)&lh_value_typed_mt_key);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, "littlehorse.value");
  lua_setfield(L, -2, "__name");
  lua_rawset(L, LUA_REGISTRYINDEX);
}

static void *arena_new(lua_State *L, lh_context *c, size_t n) {
  void *p = lh_arena_alloc(&c->arena, n);
  if (!p) luaL_error(L, "littlehorse: out of memory");
  return p;
}
#define NEW_MSG(L, c, T, init) ({ T *m_ = arena_new((L), (c), sizeof(T)); T v_ = init; *m_ = v_; m_; })

/* Protobuf `string` fields must be valid UTF-8 (the server parses them with protobuf-java). */
static void check_utf8(lua_State *L, const char *s, size_t n, const lh_path *path) {
  size_t bad = lh_utf8_check(s, n);
  if (bad != LH_UTF8_OK)
    lh_path_error(L, path, "invalid UTF-8 at byte %d (use lh.bytes for binary data)", (int)bad + 1);
}

const char *lh_check_text(lua_State *L, int idx, const lh_path *path, int nonempty, size_t *len) {
  size_t n;
  if (lua_type(L, idx) != LUA_TSTRING)
    lh_path_error(L, path, "expected a string, got %s", luaL_typename(L, idx));
  const char *s = lua_tolstring(L, idx, &n);
  if (nonempty && n == 0) lh_path_error(L, path, "must not be empty");
  check_utf8(L, s, n, path);
  if (memchr(s, '\0', n))
    lh_path_error(L, path, "contains a NUL byte, which ids and names cannot carry (the server keys on them)");
  if (len) *len = n;
  return s;
}

const char *lh_text_field(lua_State *L, lh_context *c, int idx, const lh_path *path, int nonempty) {
  size_t n;
  const char *s = lh_check_text(L, idx, path, nonempty, &n);
  return lh_keep_bytes(L, c, idx, s, n);
}

/* An integer in lo..hi (int64.h: numbers, int64 cdata; `flags` adds decimal text). */
static int64_t check_integer(lua_State *L, int idx, const lh_path *path, int64_t lo, int64_t hi, int flags) {
  int64_t v = 0;
  if (!lh_int64_get(L, idx, &v, path, flags))
    lh_path_error(L, path, "expected an integer, got %s", lh_int64_not_integer(L, idx));
  if (v < lo || v > hi) {
    char msg[96]; /* lua_pushfstring has no 64-bit integer format before 5.3 */
    snprintf(msg, sizeof msg, "%lld is out of range %lld..%lld", (long long)v, (long long)lo, (long long)hi);
    lh_path_error(L, path, "%s", msg);
  }
  return v;
}

/* The server parses requests with protobuf-java's default recursion limit: a message nested
 * deeper than LH_VALUE_MAX_MSG_DEPTH levels below the request is refused there (as INTERNAL),
 * so refuse it here, naming the path. `level` is the nesting level of the message about to be
 * written (the request's content VariableValue is level 1). */
static void check_level(lua_State *L, const lh_path *path, int level) {
  if (level > LH_VALUE_MAX_MSG_DEPTH)
    lh_path_error(L, path, "nesting deeper than %d protobuf message levels, the server's limit "
                  "(a level of lh.array takes 2, lh.map 3, lh.struct 5)", LH_VALUE_MAX_MSG_DEPTH);
}

/* depth: ancestors so far; level: this WfRunId's message level (see check_level) */
static Littlehorse__WfRunId *wf_run_id(lua_State *L, int idx, lh_context *c, const lh_path *path, int depth,
                                       int level) {
  Littlehorse__WfRunId *id = NEW_MSG(L, c, Littlehorse__WfRunId, LITTLEHORSE__WF_RUN_ID__INIT);
  if (depth > LH_VALUE_MAX_DEPTH) lh_path_error(L, path, "parent chain deeper than %d", LH_VALUE_MAX_DEPTH);
  check_level(L, path, level);
  if (lua_type(L, idx) == LUA_TSTRING) {
    id->id = (char *)lh_text_field(L, c, idx, path, 1);
    return id;
  }
  if (!lua_istable(L, idx))
    lh_path_error(L, path, "expected a string or a table { id = ..., parent_wf_run_id = ... }, got %s",
                  luaL_typename(L, idx));
  lua_checkstack(L, 4);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t kl;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kl) : NULL;
    if (k && strcmp(k, "id") == 0) {
      lh_path p = lh_path_field(path, "id", 2);
      id->id = (char *)lh_text_field(L, c, lua_gettop(L), &p, 1);
    } else if (k && strcmp(k, "parent_wf_run_id") == 0) {
      lh_path p = lh_path_field(path, "parent_wf_run_id", 16);
      id->parent_wf_run_id = wf_run_id(L, lua_gettop(L), c, &p, depth + 1, level + 1);
    } else {
      lh_path_error(L, path, "unknown field %s (a WfRunId has id and parent_wf_run_id)",
                    k ? lua_pushfstring(L, "'%s'", k) : luaL_typename(L, -2));
    }
    lua_pop(L, 1);
  }
  if (id->id == (char *)protobuf_c_empty_string) {
    lh_path p = lh_path_field(path, "id", 2);
    lh_path_error(L, &p, "required");
  }
  return id;
}

Littlehorse__WfRunId *lh_wf_run_id_to_pb(lua_State *L, int idx, lh_context *c, const lh_path *path) {
  return wf_run_id(L, lua_absindex(L, idx), c, path, 0, 1);
}

static void value_to_pb(lua_State *L, int idx, lh_context *c, Littlehorse__VariableValue *vv,
                        const lh_path *path, int depth);

/* The `str` member. Text may hold NUL bytes (the wire carries them; other SDKs send them), but
 * protobuf-c keeps `string` fields as C strings and would cut one at its first NUL. Such text
 * goes into the VariableValue as an unknown field instead, with the member's number (6): its
 * data is what follows the key on the wire (the length, then the bytes), which protobuf-c's
 * packer and event_writer.c both write as it is, so the bytes are those the member would have.
 * The copy is made here, in the arena: it is the rare case. */
static void set_str(lua_State *L, int idx, lh_context *c, Littlehorse__VariableValue *vv, const lh_path *path) {
  size_t n;
  if (lua_type(L, idx) != LUA_TSTRING) lh_path_error(L, path, "expected a string, got %s", luaL_typename(L, idx));
  const char *s = lua_tolstring(L, idx, &n);
  check_utf8(L, s, n, path);
  if (!memchr(s, '\0', n)) {
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_STR;
    vv->str = (char *)lh_keep_bytes(L, c, idx, s, n);
    return;
  }
  ProtobufCMessageUnknownField *u = arena_new(L, c, sizeof *u);
  u->tag = LH_VALUE_STR_FIELD;
  u->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
  u->len = lh_pb_varint_size(n) + n;
  u->data = arena_new(L, c, u->len); /* allocates no Lua object: s stays valid */
  memcpy(lh_pb_put_varint(u->data, n), s, n);
  vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE__NOT_SET;
  vv->base.n_unknown_fields = 1;
  vv->base.unknown_fields = u;
}

/* JSON text for a table (or raw text given to lh.json_obj / lh.json_arr). Text made from a
 * table is copied into the arena (the context's JSON buffer is reused by the next nested value);
 * raw text is kept (keep.h). JSON text never holds a NUL byte: the encoder escapes it as
 * \u0000, and the decoder refuses raw control characters. */
static char *json_text(lua_State *L, int idx, lh_context *c, const lh_path *path, char *kind) {
  const char *src;
  size_t n;
  if (lua_type(L, idx) == LUA_TSTRING) {
    src = lua_tolstring(L, idx, &n); /* the string stays at idx while it is checked */
    char err[160];
    if (!lh_json_check(L, src, n, err, sizeof err)) lh_path_error(L, path, "invalid JSON text: %s", err);
    if (memchr(src, '\0', n)) lh_path_error(L, path, "contains a NUL byte");
    src = lh_keep_string(L, c, idx, &n);
  } else {
    lh_buf_reset(&c->json);
    lh_json_encode(L, idx, &c->json, path);
    char *text = arena_new(L, c, c->json.len + 1);
    memcpy(text, c->json.data, c->json.len);
    text[c->json.len] = '\0';
    src = text;
    n = c->json.len;
  }
  size_t i = 0;
  while (i < n && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r')) i++;
  *kind = i < n ? src[i] : 0;
  return (char *)src;
}

static void set_json(lua_State *L, int idx, lh_context *c, Littlehorse__VariableValue *vv,
                     const lh_path *path, int want /* 0, '{' or '[' */) {
  char kind;
  if (want == '[' && lua_type(L, idx) == LUA_TTABLE) {
    /* lh.json_arr{}: an empty table is the empty array here (plain `{}` means an object) */
    lua_pushnil(L);
    if (!lua_next(L, idx)) {
      vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_ARR;
      vv->json_arr = (char *)"[]";
      return;
    }
    lua_pop(L, 2);
  }
  char *text = json_text(L, idx, c, path, &kind);
  if (kind == '[') {
    if (want == '{') lh_path_error(L, path, "lh.json_obj needs a JSON object, got an array");
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_ARR;
    vv->json_arr = text;
  } else if (kind == '{') {
    if (want == '[') lh_path_error(L, path, "lh.json_arr needs a JSON array, got an object");
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_OBJ;
    vv->json_obj = text;
  } else {
    lh_path_error(L, path, "JSON content must be an object or an array");
  }
}

static Google__Protobuf__Timestamp *timestamp(lua_State *L, int idx, lh_context *c, const lh_path *path) {
  if (!lua_istable(L, idx)) lh_path_error(L, path, "expected { seconds = , nanos = }, got %s", luaL_typename(L, idx));
  Google__Protobuf__Timestamp *ts = NEW_MSG(L, c, Google__Protobuf__Timestamp, GOOGLE__PROTOBUF__TIMESTAMP__INIT);
  lh_keep_field(L, c, idx, LH_KEY_SECONDS);
  lh_path ps = lh_path_field(path, "seconds", 7);
  /* 0001-01-01 .. 9999-12-31, the range RFC 3339 and google.protobuf.Timestamp allow */
  ts->seconds = check_integer(L, -1, &ps, -62135596800LL, 253402300799LL, 0);
  lh_keep_field(L, c, idx, LH_KEY_NANOS);
  lh_path pn = lh_path_field(path, "nanos", 5);
  ts->nanos = lua_isnil(L, -1) ? 0 : (int32_t)check_integer(L, -1, &pn, 0, 999999999, 0);
  lua_pop(L, 2);
  return ts;
}

static void set_array(lua_State *L, int idx, lh_context *c, Littlehorse__VariableValue *vv,
                      const lh_path *path, int depth) {
  if (!lua_istable(L, idx)) lh_path_error(L, path, "lh.array needs a table, got %s", luaL_typename(L, idx));
  size_t n = lua_rawlen(L, idx);
  check_level(L, path, depth + 1); /* VariableValue > Array > items */
  Littlehorse__Array *arr = NEW_MSG(L, c, Littlehorse__Array, LITTLEHORSE__ARRAY__INIT);
  arr->n_items = n;
  arr->items = n ? arena_new(L, c, n * sizeof *arr->items) : NULL;
  lua_checkstack(L, 3);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    lh_path p = lh_path_index(path, (lua_Integer)i + 1);
    if (lua_isnil(L, -1)) lh_path_error(L, &p, "hole in the array (use lh.null for a null item)");
    arr->items[i] = NEW_MSG(L, c, Littlehorse__VariableValue, LITTLEHORSE__VARIABLE_VALUE__INIT);
    value_to_pb(L, lua_gettop(L), c, arr->items[i], &p, depth + 2);
    lua_pop(L, 1);
  }
  /* The length operator may stop at any hole ({1, nil, 3} has length 1 under LuaJIT, and a
   * table filled out of order can have length 1 anywhere): an item past it means a hole at n+1. */
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) > (lua_Number)n) {
      lh_path p = lh_path_index(path, (lua_Integer)n + 1);
      lh_path_error(L, &p, "hole in the array (use lh.null for a null item)");
    }
  }
  vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_ARRAY;
  vv->array = arr;
}

static void set_map(lua_State *L, int idx, lh_context *c, Littlehorse__VariableValue *vv,
                    const lh_path *path, int depth) {
  if (!lua_istable(L, idx)) lh_path_error(L, path, "lh.map needs a list of {key, value} pairs, got %s", luaL_typename(L, idx));
  size_t n = lua_rawlen(L, idx);
  check_level(L, path, depth + 1); /* VariableValue > Map > Entry > key, value */
  Littlehorse__Map *map = NEW_MSG(L, c, Littlehorse__Map, LITTLEHORSE__MAP__INIT);
  map->n_entries = n;
  map->entries = n ? arena_new(L, c, n * sizeof *map->entries) : NULL;
  lua_checkstack(L, 4);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    lh_path p = lh_path_index(path, (lua_Integer)i + 1);
    if (!lua_istable(L, -1)) lh_path_error(L, &p, "expected a {key, value} pair, got %s", luaL_typename(L, -1));
    int pair = lua_gettop(L);
    check_level(L, &p, depth + 2);
    Littlehorse__Map__Entry *e = NEW_MSG(L, c, Littlehorse__Map__Entry, LITTLEHORSE__MAP__ENTRY__INIT);
    e->key = NEW_MSG(L, c, Littlehorse__VariableValue, LITTLEHORSE__VARIABLE_VALUE__INIT);
    e->value = NEW_MSG(L, c, Littlehorse__VariableValue, LITTLEHORSE__VARIABLE_VALUE__INIT);
    lua_rawgeti(L, pair, 1);
    lh_path pk = lh_path_index(&p, 1);
    if (lua_isnil(L, -1)) lh_path_error(L, &pk, "map keys cannot be nil");
    value_to_pb(L, lua_gettop(L), c, e->key, &pk, depth + 3);
    lua_rawgeti(L, pair, 2);
    lh_path pv = lh_path_index(&p, 2);
    value_to_pb(L, lua_gettop(L), c, e->value, &pv, depth + 3);
    lua_pop(L, 3);
    map->entries[i] = e;
  }
  vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_MAP;
  vv->map = map;
}

static void set_struct(lua_State *L, int typed, int idx, lh_context *c, Littlehorse__VariableValue *vv,
                       const lh_path *path, int depth) {
  if (!lua_istable(L, idx)) lh_path_error(L, path, "lh.struct needs a table of fields, got %s", luaL_typename(L, idx));
  /* VariableValue > Struct > StructDefId, InlineStruct > FieldsEntry > StructField > value */
  check_level(L, path, depth + 2);
  Littlehorse__Struct *st = NEW_MSG(L, c, Littlehorse__Struct, LITTLEHORSE__STRUCT__INIT);
  st->struct_def_id = NEW_MSG(L, c, Littlehorse__StructDefId, LITTLEHORSE__STRUCT_DEF_ID__INIT);
  lh_keep_field(L, c, typed, LH_KEY_NAME);
  lh_path pn = lh_path_field(path, "name", 4);
  st->struct_def_id->name = (char *)lh_text_field(L, c, lua_gettop(L), &pn, 1);
  lh_keep_field(L, c, typed, LH_KEY_VERSION);
  lh_path pver = lh_path_field(path, "version", 7);
  st->struct_def_id->version = lua_isnil(L, -1) ? 0 : (int32_t)check_integer(L, -1, &pver, 0, INT32_MAX, 0);
  lua_pop(L, 2);
  Littlehorse__InlineStruct *in = NEW_MSG(L, c, Littlehorse__InlineStruct, LITTLEHORSE__INLINE_STRUCT__INIT);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) { n++; lua_pop(L, 1); }
  in->n_fields = n;
  in->fields = n ? arena_new(L, c, n * sizeof *in->fields) : NULL;
  size_t i = 0;
  lua_checkstack(L, 4);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) lh_path_error(L, path, "struct field names must be strings");
    size_t kl;
    const char *k = lua_tolstring(L, -2, &kl); /* the key stays on the stack for this field */
    lh_path pf = lh_path_field(path, k, kl);
    lh_check_text(L, -2, &pf, 1, NULL);
    check_level(L, &pf, depth + 4);
    Littlehorse__InlineStruct__FieldsEntry *e =
        NEW_MSG(L, c, Littlehorse__InlineStruct__FieldsEntry, LITTLEHORSE__INLINE_STRUCT__FIELDS_ENTRY__INIT);
    e->key = (char *)lh_keep_bytes(L, c, lua_gettop(L) - 1, k, kl);
    e->value = NEW_MSG(L, c, Littlehorse__StructField, LITTLEHORSE__STRUCT_FIELD__INIT);
    e->value->value = NEW_MSG(L, c, Littlehorse__VariableValue, LITTLEHORSE__VARIABLE_VALUE__INIT);
    value_to_pb(L, lua_gettop(L), c, e->value->value, &pf, depth + 5);
    in->fields[i++] = e;
    lua_pop(L, 1);
  }
  st->struct_ = in;
  vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_STRUCT;
  vv->struct_ = st;
}

/* A typed value { type = KIND, value = ... } from the constructors in values.lua. */
static void typed_to_pb(lua_State *L, int idx, lh_context *c, Littlehorse__VariableValue *vv,
                        const lh_path *path, int depth) {
  lh_keep_field(L, c, idx, LH_KEY_TYPE);
  const char *kind = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lh_keep_field(L, c, idx, LH_KEY_VALUE);
  int v = lua_gettop(L);
  if (!kind) lh_path_error(L, path, "typed value without a type");
  if (strcmp(kind, "BYTES") == 0) {
    if (lua_type(L, v) != LUA_TSTRING) lh_path_error(L, path, "lh.bytes needs a string, got %s", luaL_typename(L, v));
    size_t n;
    vv->bytes.data = (uint8_t *)lh_keep_string(L, c, v, &n);
    vv->bytes.len = n;
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_BYTES;
  } else if (strcmp(kind, "STR") == 0) {
    set_str(L, v, c, vv, path);
  } else if (strcmp(kind, "INT") == 0) {
    vv->int_ = check_integer(L, v, path, INT64_MIN, INT64_MAX, LH_INT_TEXT);
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_INT;
  } else if (strcmp(kind, "DOUBLE") == 0) {
    if (lua_type(L, v) != LUA_TNUMBER) lh_path_error(L, path, "lh.double needs a number, got %s", luaL_typename(L, v));
    vv->double_ = (double)lua_tonumber(L, v);
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_DOUBLE;
  } else if (strcmp(kind, "BOOL") == 0) {
    vv->bool_ = lua_toboolean(L, v);
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_BOOL;
  } else if (strcmp(kind, "JSON_OBJ") == 0) {
    set_json(L, v, c, vv, path, '{');
  } else if (strcmp(kind, "JSON_ARR") == 0) {
    set_json(L, v, c, vv, path, '[');
  } else if (strcmp(kind, "TIMESTAMP") == 0) {
    check_level(L, path, depth + 1);
    vv->utc_timestamp = timestamp(L, v, c, path);
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_UTC_TIMESTAMP;
  } else if (strcmp(kind, "WF_RUN_ID") == 0) {
    vv->wf_run_id = wf_run_id(L, v, c, path, 0, depth + 1);
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_WF_RUN_ID;
  } else if (strcmp(kind, "ARRAY") == 0) {
    set_array(L, v, c, vv, path, depth);
  } else if (strcmp(kind, "MAP") == 0) {
    set_map(L, v, c, vv, path, depth);
  } else if (strcmp(kind, "STRUCT") == 0) {
    set_struct(L, idx, v, c, vv, path, depth);
  } else if (strcmp(kind, "NULL") != 0) {
    lh_path_error(L, path, "unknown value type '%s'", kind);
  }
  lua_pop(L, 2);
}

/* 1 for a typed value, 2 for a timestamp object, 0 for a plain table */
static int table_kind(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  lh_value_push_typed_mt(L);
  int kind = lua_rawequal(L, -1, -2);
  lua_pop(L, 1);
  if (!kind) {
    luaL_getmetatable(L, LH_TIMESTAMP_MT);
    kind = lua_rawequal(L, -1, -2) ? 2 : 0;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return kind;
}

/* depth: the message level of vv (see check_level) */
static void value_to_pb(lua_State *L, int idx, lh_context *c, Littlehorse__VariableValue *vv,
                        const lh_path *path, int depth) {
  check_level(L, path, depth);
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return;
  case LUA_TBOOLEAN:
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_BOOL;
    vv->bool_ = lua_toboolean(L, idx);
    return;
  case LUA_TNUMBER:
    /* 5.3+: the integer subtype. 5.1/LuaJIT have none: an integral number within 2^53 is
     * taken as an integer there (compat.h), as the JSON encoder does. */
    if (lua_isinteger(L, idx)) {
      vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_INT;
      vv->int_ = (int64_t)lua_tointeger(L, idx);
      return;
    }
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_DOUBLE;
    vv->double_ = (double)lua_tonumber(L, idx);
    return;
  case LUA_TSTRING:
    set_str(L, idx, c, vv, path);
    return;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) return; /* lh.null / cjson.null: NULL */
    set_json(L, idx, c, vv, path, 0);         /* empty-array markers; the JSON encoder judges */
    return;
  case LUA_TTABLE:
    switch (table_kind(L, idx)) {
    case 1: typed_to_pb(L, idx, c, vv, path, depth); break;
    case 2:
      check_level(L, path, depth + 1);
      vv->utc_timestamp = timestamp(L, idx, c, path);
      vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_UTC_TIMESTAMP;
      break;
    default: set_json(L, idx, c, vv, path, 0);
    }
    return;
  case LH_TCDATA: /* LuaJIT: an int64_t / uint64_t is an int; other cdata raise */
    vv->int_ = check_integer(L, idx, path, INT64_MIN, INT64_MAX, 0);
    vv->value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_INT;
    return;
  default:
    lh_path_error(L, path, "cannot convert a %s to a VariableValue", luaL_typename(L, idx));
  }
}

void lh_value_to_pb(lua_State *L, int idx, lh_context *c, Littlehorse__VariableValue *vv,
                    const lh_path *path) {
  value_to_pb(L, lua_absindex(L, idx), c, vv, path, 1);
}

/* ---- reply direction ---- */

const char *lh_value_kind(const Littlehorse__VariableValue *vv) {
  if (!vv) return NULL;
  switch (vv->value_case) {
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_OBJ: return "JSON_OBJ";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_ARR: return "JSON_ARR";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_DOUBLE: return "DOUBLE";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_BOOL: return "BOOL";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_STR: return "STR";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_INT: return "INT";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_BYTES: return "BYTES";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_WF_RUN_ID: return "WF_RUN_ID";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_UTC_TIMESTAMP: return "TIMESTAMP";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_STRUCT: return "STRUCT";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_ARRAY: return "ARRAY";
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_MAP: return "MAP";
  default: return NULL;
  }
}

/* A `string` field protobuf-c unpacked into the arena a, whole (NUL bytes included). */
static void push_text(lua_State *L, const lh_arena *a, const char *s) {
  lua_pushlstring(L, s ? s : "", lh_arena_pb_strlen(a, s));
}

void lh_wf_run_id_push(lua_State *L, const lh_arena *a, const Littlehorse__WfRunId *id) {
  lua_checkstack(L, 3);
  lua_createtable(L, 0, 2);
  push_text(L, a, id->id);
  lua_setfield(L, -2, "id");
  if (id->parent_wf_run_id) {
    lh_wf_run_id_push(L, a, id->parent_wf_run_id);
    lua_setfield(L, -2, "parent_wf_run_id");
  }
}

static void push_typed(lua_State *L, const char *kind) {
  /* leaves the typed table on the stack; caller pushes and sets "value" */
  lua_createtable(L, 0, 2);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "type");
  lh_value_push_typed_mt(L);
  lua_setmetatable(L, -2);
}

void lh_value_push_json(lua_State *L, const char *text, size_t n, const char *kind) {
  char err[160];
  if (lh_json_decode(L, text, n, err, sizeof err)) return;
  /* The real server keeps malformed JSON as sent; hand it back as raw text, typed. */
  push_typed(L, kind);
  lua_pushlstring(L, text, n);
  lua_setfield(L, -2, "value");
  lua_pushstring(L, err);
  lua_setfield(L, -2, "error");
}

static void push_json(lua_State *L, const lh_arena *a, const char *text, const char *kind) {
  lh_value_push_json(L, text, lh_arena_pb_strlen(a, text), kind);
}

void lh_value_push(lua_State *L, const lh_arena *a, const Littlehorse__VariableValue *vv, int null_marker) {
  lua_checkstack(L, 6);
  if (!vv) { if (null_marker) lua_pushlightuserdata(L, NULL); else lua_pushnil(L); return; }
  switch (vv->value_case) {
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_OBJ: push_json(L, a, vv->json_obj, "JSON_OBJ"); return;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_ARR: push_json(L, a, vv->json_arr, "JSON_ARR"); return;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_DOUBLE: lua_pushnumber(L, vv->double_); return;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_BOOL: lua_pushboolean(L, vv->bool_); return;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_STR: push_text(L, a, vv->str); return;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_INT: lh_int64_push(L, vv->int_); return;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_BYTES:
    /* Top level: a string (content_type says BYTES). Inside a native array, map or struct
     * nothing would tell it from a str, so it comes back as lh.bytes(s), as it was sent. */
    if (null_marker) push_typed(L, "BYTES");
    lua_pushlstring(L, (const char *)vv->bytes.data, vv->bytes.len);
    if (null_marker) lua_setfield(L, -2, "value");
    return;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_WF_RUN_ID:
    push_typed(L, "WF_RUN_ID");
    lh_wf_run_id_push(L, a, vv->wf_run_id);
    lua_setfield(L, -2, "value");
    return;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_UTC_TIMESTAMP:
    lh_timestamp_push(L, vv->utc_timestamp->seconds, vv->utc_timestamp->nanos);
    return;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_ARRAY: {
    push_typed(L, "ARRAY");
    size_t n = vv->array->n_items;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      lh_value_push(L, a, vv->array->items[i], 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "value");
    return;
  }
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_MAP: {
    push_typed(L, "MAP");
    size_t n = vv->map->n_entries;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      lua_createtable(L, 2, 0);
      lh_value_push(L, a, vv->map->entries[i]->key, 1);
      lua_rawseti(L, -2, 1);
      lh_value_push(L, a, vv->map->entries[i]->value, 1);
      lua_rawseti(L, -2, 2);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "value");
    return;
  }
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_STRUCT: {
    push_typed(L, "STRUCT");
    const Littlehorse__Struct *st = vv->struct_;
    if (st->struct_def_id) {
      push_text(L, a, st->struct_def_id->name);
      lua_setfield(L, -2, "name");
      lua_pushinteger(L, st->struct_def_id->version);
      lua_setfield(L, -2, "version");
    }
    size_t n = st->struct_ ? st->struct_->n_fields : 0;
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
      const Littlehorse__InlineStruct__FieldsEntry *e = st->struct_->fields[i];
      push_text(L, a, e->key); /* a field name may hold NUL: never a C-string key */
      lh_value_push(L, a, e->value ? e->value->value : NULL, 1);
      lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "value");
    return;
  }
  default:
    if (null_marker) lua_pushlightuserdata(L, NULL); else lua_pushnil(L);
  }
}
