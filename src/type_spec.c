#include <string.h>
#include "type_spec.h"
#include "keep.h"
#include "reply.h"
#include "request.h"
#include "value.h"

/* Type nesting deeper than this is refused (the server's parser stops at 100 message levels,
 * and each level of a type takes two or three). */
#define MAX_TYPE_DEPTH 32

static const char *const primitives[] = { "JSON_OBJ", "JSON_ARR", "DOUBLE", "BOOL", "STR", "INT", "BYTES",
                                          "WF_RUN_ID", "TIMESTAMP", NULL };
/* What `type` may say: a primitive, or one of these. */
static const char *const kinds[] = { "JSON_OBJ", "JSON_ARR", "DOUBLE", "BOOL", "STR", "INT", "BYTES", "WF_RUN_ID",
                                     "TIMESTAMP", "ARRAY", "MAP", "STRUCT", "INLINE_STRUCT", NULL };
enum { KIND_ARRAY = 9, KIND_MAP, KIND_STRUCT, KIND_INLINE_STRUCT };

enum { K_TYPE, K_MASKED, K_ARRAY_TYPE, K_KEY_TYPE, K_VALUE_TYPE, K_NAME, K_VERSION, K_FIELDS, K_IS_NULLABLE,
       K_DEFAULT_VALUE, K_COUNT };
static const char *const keys[] = { "type", "masked", "array_type", "key_type", "value_type", "name", "version",
                                    "fields", "is_nullable", "default_value", NULL };

const char *lh_type_primitive_name(int t) {
  return t >= 0 && t <= LITTLEHORSE__VARIABLE_TYPE__TIMESTAMP ? primitives[t] : NULL;
}

static int lookup(const char *s, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (strcmp(s, list[i]) == 0) return i;
  return -1;
}

static Littlehorse__TypeDefinition *new_type(lua_State *L, lh_context *c) {
  Littlehorse__TypeDefinition *t = lh_req_alloc(L, c, sizeof *t);
  Littlehorse__TypeDefinition init = LITTLEHORSE__TYPE_DEFINITION__INIT;
  *t = init;
  return t;
}

static int kind_of_name(lua_State *L, int idx, const lh_path *p, const char *const *list) {
  const char *s = lua_tostring(L, idx);
  int k = lookup(s, list);
  if (k >= 0) return k;
  const char *near = lh_nearest(s, strlen(s), list);
  if (near) lh_path_error(L, p, "unknown type '%s' (did you mean %s?)", s, near);
  return lh_path_error(L, p, "unknown type '%s' (a primitive such as \"INT\", or a table { type = \"ARRAY\" | "
                       "\"MAP\" | \"STRUCT\" | \"INLINE_STRUCT\", ... })", s);
}

static Littlehorse__TypeDefinition *to_pb(lua_State *L, int idx, lh_context *c, const lh_path *p, int depth,
                                          Littlehorse__StructFieldDef *field);

/* A required nested type (array_type, key_type, value_type) in slot v. */
static Littlehorse__TypeDefinition *nested(lua_State *L, int v, lh_context *c, const lh_path *p, const char *name,
                                           int depth) {
  lh_path pn = lh_path_field(p, name, strlen(name));
  if (lua_isnil(L, v)) lh_path_error(L, &pn, "required");
  return to_pb(L, v, c, &pn, depth + 1, NULL);
}

/* fields = { name = field type, ... } of an INLINE_STRUCT */
static Littlehorse__InlineStructDef *inline_struct(lua_State *L, int v, lh_context *c, const lh_path *p, int depth) {
  lh_path pf = lh_path_field(p, "fields", 6);
  if (lua_isnil(L, v)) lh_path_error(L, &pf, "required (a table of field name = type)");
  lh_req_table(L, v, &pf, "a fields");
  Littlehorse__InlineStructDef *d = lh_req_alloc(L, c, sizeof *d);
  Littlehorse__InlineStructDef init = LITTLEHORSE__INLINE_STRUCT_DEF__INIT;
  *d = init;
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, v)) { n++; lua_pop(L, 1); }
  d->fields = n ? lh_req_alloc(L, c, n * sizeof *d->fields) : NULL;
  lua_checkstack(L, 4);
  lua_pushnil(L);
  while (lua_next(L, v) && d->n_fields < n) {
    if (lua_type(L, -2) != LUA_TSTRING) lh_path_error(L, &pf, "field names are strings, got a %s key", luaL_typename(L, -2));
    size_t kl;
    const char *k = lua_tolstring(L, -2, &kl);
    lh_path pk = lh_path_field(&pf, k, kl);
    lh_check_text(L, -2, &pk, 1, NULL);
    Littlehorse__InlineStructDef__FieldsEntry *e = lh_req_alloc(L, c, sizeof *e);
    Littlehorse__InlineStructDef__FieldsEntry einit = LITTLEHORSE__INLINE_STRUCT_DEF__FIELDS_ENTRY__INIT;
    *e = einit;
    e->key = (char *)lh_keep_bytes(L, c, lua_gettop(L) - 1, k, kl);
    e->value = lh_req_alloc(L, c, sizeof *e->value);
    Littlehorse__StructFieldDef finit = LITTLEHORSE__STRUCT_FIELD_DEF__INIT;
    *e->value = finit;
    e->value->field_type = to_pb(L, lua_gettop(L), c, &pk, depth + 1, e->value);
    d->fields[d->n_fields++] = e;
    lua_pop(L, 1);
  }
  return d;
}

/* field: the StructFieldDef when this type is an inline struct's field (is_nullable and
 * default_value then go there), else NULL. */
static Littlehorse__TypeDefinition *to_pb(lua_State *L, int idx, lh_context *c, const lh_path *p, int depth,
                                          Littlehorse__StructFieldDef *field) {
  idx = lua_absindex(L, idx);
  if (depth > MAX_TYPE_DEPTH) lh_path_error(L, p, "types nested deeper than %d levels", MAX_TYPE_DEPTH);
  Littlehorse__TypeDefinition *t = new_type(L, c);
  if (lua_type(L, idx) == LUA_TSTRING) {
    t->defined_type_case = LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_PRIMITIVE_TYPE;
    t->primitive_type = (Littlehorse__VariableType)kind_of_name(L, idx, p, primitives);
    return t;
  }
  if (!lua_istable(L, idx))
    lh_path_error(L, p, "expected a type: a name such as \"INT\", or a table { type = ... }, got %s",
                  luaL_typename(L, idx));
  /* Every key into its slot first: what a key means depends on `type`. */
  lua_checkstack(L, K_COUNT + 4);
  int slots = lua_gettop(L) + 1;
  for (int i = 0; i < K_COUNT; i++) lua_pushnil(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int k = lh_req_field(L, p, keys, "a type");
    if (!field && (k == K_IS_NULLABLE || k == K_DEFAULT_VALUE)) {
      lh_path pk = lh_path_field(p, keys[k], strlen(keys[k]));
      lh_path_error(L, &pk, "only the fields of an INLINE_STRUCT have %s", keys[k]);
    }
    lua_replace(L, slots + k);
  }
  lh_path ptype = lh_path_field(p, "type", 4);
  if (lua_type(L, slots + K_TYPE) != LUA_TSTRING)
    lh_path_error(L, &ptype, lua_isnil(L, slots + K_TYPE) ? "required (\"INT\", \"ARRAY\", \"MAP\", ...)"
                                                           : "expected a type name, got %s",
                  luaL_typename(L, slots + K_TYPE));
  int kind = kind_of_name(L, slots + K_TYPE, &ptype, kinds);
  /* keys that belong to other kinds */
  static const int owner[K_COUNT] = { -1, -1, KIND_ARRAY, KIND_MAP, KIND_MAP, KIND_STRUCT, KIND_STRUCT,
                                      KIND_INLINE_STRUCT, -1, -1 };
  for (int k = 0; k < K_COUNT; k++) {
    if (owner[k] >= 0 && owner[k] != kind && !lua_isnil(L, slots + k)) {
      lh_path pk = lh_path_field(p, keys[k], strlen(keys[k]));
      lh_path_error(L, &pk, "only a %s type has %s", kinds[owner[k]], keys[k]);
    }
  }
  if (!lua_isnil(L, slots + K_MASKED)) {
    lh_path pm = lh_path_field(p, "masked", 6);
    t->masked = lh_req_boolean(L, slots + K_MASKED, &pm);
  }
  switch (kind) {
  case KIND_ARRAY: {
    Littlehorse__InlineArrayDef *d = lh_req_alloc(L, c, sizeof *d);
    Littlehorse__InlineArrayDef init = LITTLEHORSE__INLINE_ARRAY_DEF__INIT;
    *d = init;
    d->array_type = nested(L, slots + K_ARRAY_TYPE, c, p, "array_type", depth);
    t->defined_type_case = LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_ARRAY_DEF;
    t->inline_array_def = d;
    break;
  }
  case KIND_MAP: {
    Littlehorse__InlineMapDef *d = lh_req_alloc(L, c, sizeof *d);
    Littlehorse__InlineMapDef init = LITTLEHORSE__INLINE_MAP_DEF__INIT;
    *d = init;
    d->key_type = nested(L, slots + K_KEY_TYPE, c, p, "key_type", depth);
    d->value_type = nested(L, slots + K_VALUE_TYPE, c, p, "value_type", depth);
    t->defined_type_case = LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_MAP_DEF;
    t->inline_map_def = d;
    break;
  }
  case KIND_STRUCT: {
    Littlehorse__StructDefId *d = lh_req_alloc(L, c, sizeof *d);
    Littlehorse__StructDefId init = LITTLEHORSE__STRUCT_DEF_ID__INIT;
    *d = init;
    lh_path pn = lh_path_field(p, "name", 4), pv = lh_path_field(p, "version", 7);
    if (lua_isnil(L, slots + K_NAME)) lh_path_error(L, &pn, "required (the StructDef's name)");
    d->name = (char *)lh_text_field(L, c, slots + K_NAME, &pn, 1);
    if (!lua_isnil(L, slots + K_VERSION)) d->version = (int32_t)lh_req_integer(L, slots + K_VERSION, &pv, 0, INT32_MAX);
    t->defined_type_case = LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_STRUCT_DEF_ID;
    t->struct_def_id = d;
    break;
  }
  case KIND_INLINE_STRUCT:
    t->defined_type_case = LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_STRUCT_DEF;
    t->inline_struct_def = inline_struct(L, slots + K_FIELDS, c, p, depth);
    break;
  default:
    t->defined_type_case = LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_PRIMITIVE_TYPE;
    t->primitive_type = (Littlehorse__VariableType)kind;
  }
  if (field) {
    if (!lua_isnil(L, slots + K_IS_NULLABLE)) {
      lh_path pn = lh_path_field(p, "is_nullable", 11);
      field->is_nullable = lh_req_boolean(L, slots + K_IS_NULLABLE, &pn);
    }
    if (!lua_isnil(L, slots + K_DEFAULT_VALUE)) {
      lh_path pd = lh_path_field(p, "default_value", 13);
      field->default_value = lh_req_alloc(L, c, sizeof *field->default_value);
      Littlehorse__VariableValue vinit = LITTLEHORSE__VARIABLE_VALUE__INIT;
      *field->default_value = vinit;
      lh_value_to_pb(L, slots + K_DEFAULT_VALUE, c, field->default_value, &pd);
    }
  }
  lua_settop(L, slots - 1);
  return t;
}

Littlehorse__TypeDefinition *lh_type_to_pb(lua_State *L, int idx, lh_context *c, const lh_path *p) {
  return to_pb(L, idx, c, p, 1, NULL);
}

Littlehorse__ReturnType *lh_return_type_to_pb(lua_State *L, int idx, lh_context *c, const lh_path *p) {
  Littlehorse__ReturnType *rt = lh_req_alloc(L, c, sizeof *rt);
  Littlehorse__ReturnType init = LITTLEHORSE__RETURN_TYPE__INIT;
  *rt = init;
  if (lua_type(L, idx) == LUA_TSTRING && strcmp(lua_tostring(L, idx), "VOID") == 0) return rt;
  rt->return_type = lh_type_to_pb(L, idx, c, p);
  return rt;
}

/* ---- replies ---- */

static void push_type(lua_State *L, const lh_arena *a, const Littlehorse__TypeDefinition *t,
                      const Littlehorse__StructFieldDef *field);

static void set_type(lua_State *L, const lh_arena *a, const char *name, const Littlehorse__TypeDefinition *t) {
  if (!t) return;
  push_type(L, a, t, NULL);
  lua_setfield(L, -2, name);
}

static void push_type(lua_State *L, const lh_arena *a, const Littlehorse__TypeDefinition *t,
                      const Littlehorse__StructFieldDef *field) {
  lua_checkstack(L, 6);
  int has_field_parts = field && (field->is_nullable || field->default_value);
  const char *prim = t->defined_type_case == LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_PRIMITIVE_TYPE
                         ? lh_type_primitive_name(t->primitive_type) : NULL;
  if (prim && !t->masked && !has_field_parts) {
    lua_pushstring(L, prim);
    return;
  }
  lua_createtable(L, 0, 4);
  if (t->masked) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "masked");
  }
  switch (t->defined_type_case) {
  case LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_PRIMITIVE_TYPE:
    if (prim) lua_pushstring(L, prim);
    else lua_pushinteger(L, t->primitive_type); /* a VariableType newer than this client */
    lua_setfield(L, -2, "type");
    break;
  case LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_ARRAY_DEF:
    lua_pushliteral(L, "ARRAY");
    lua_setfield(L, -2, "type");
    set_type(L, a, "array_type", t->inline_array_def->array_type);
    break;
  case LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_MAP_DEF:
    lua_pushliteral(L, "MAP");
    lua_setfield(L, -2, "type");
    set_type(L, a, "key_type", t->inline_map_def->key_type);
    set_type(L, a, "value_type", t->inline_map_def->value_type);
    break;
  case LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_STRUCT_DEF_ID:
    lua_pushliteral(L, "STRUCT");
    lua_setfield(L, -2, "type");
    lh_reply_text(L, a, t->struct_def_id->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, t->struct_def_id->version);
    lua_setfield(L, -2, "version");
    break;
  case LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_STRUCT_DEF: {
    const Littlehorse__InlineStructDef *d = t->inline_struct_def;
    lua_pushliteral(L, "INLINE_STRUCT");
    lua_setfield(L, -2, "type");
    lua_createtable(L, 0, (int)d->n_fields);
    for (size_t i = 0; i < d->n_fields; i++) {
      const Littlehorse__InlineStructDef__FieldsEntry *e = d->fields[i];
      lh_reply_text(L, a, e->key); /* a name may hold NUL: never a C-string key */
      if (e->value && e->value->field_type) push_type(L, a, e->value->field_type, e->value);
      else lua_createtable(L, 0, 0);
      lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "fields");
    break;
  }
  default: break; /* no type set: a table with no `type` */
  }
  if (has_field_parts) {
    if (field->is_nullable) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "is_nullable");
    }
    if (field->default_value) {
      lh_value_push(L, a, field->default_value, 1);
      lua_setfield(L, -2, "default_value");
    }
  }
}

void lh_type_push(lua_State *L, const lh_arena *a, const Littlehorse__TypeDefinition *t) {
  push_type(L, a, t, NULL);
}

void lh_return_type_push(lua_State *L, const lh_arena *a, const Littlehorse__ReturnType *rt) {
  if (rt->return_type) lh_type_push(L, a, rt->return_type);
  else lua_pushliteral(L, "VOID");
}
