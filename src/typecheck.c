#include <stdio.h>
#include <string.h>
#include "typecheck.h"
#include "type_spec.h"

typedef Littlehorse__TypeDefinition Type;
typedef Littlehorse__VariableValue Value;

#define T_UNSET LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE__NOT_SET
#define T_PRIMITIVE LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_PRIMITIVE_TYPE
#define T_STRUCT LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_STRUCT_DEF_ID
#define T_ARRAY LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_ARRAY_DEF
#define T_INLINE_STRUCT LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_STRUCT_DEF
#define T_MAP LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_MAP_DEF

static int is_null(const Value *v) { return !v || v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE__NOT_SET; }
static int unset(const Type *t) { return !t || t->defined_type_case == T_UNSET; }

static const char *str(const char *s) { return s ? s : ""; }

/* Out of memory while checking: the content is let through (the server checks it anyway). */
static Type *new_type(lh_arena *a) {
  Type *t = lh_arena_alloc(a, sizeof *t);
  if (t) {
    Type init = LITTLEHORSE__TYPE_DEFINITION__INIT;
    *t = init;
  }
  return t;
}

static int primitive_of(const Value *v) {
  switch (v->value_case) {
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_OBJ: return LITTLEHORSE__VARIABLE_TYPE__JSON_OBJ;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_ARR: return LITTLEHORSE__VARIABLE_TYPE__JSON_ARR;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_DOUBLE: return LITTLEHORSE__VARIABLE_TYPE__DOUBLE;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_BOOL: return LITTLEHORSE__VARIABLE_TYPE__BOOL;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_STR: return LITTLEHORSE__VARIABLE_TYPE__STR;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_INT: return LITTLEHORSE__VARIABLE_TYPE__INT;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_BYTES: return LITTLEHORSE__VARIABLE_TYPE__BYTES;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_WF_RUN_ID: return LITTLEHORSE__VARIABLE_TYPE__WF_RUN_ID;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_UTC_TIMESTAMP: return LITTLEHORSE__VARIABLE_TYPE__TIMESTAMP;
  default: return -1;
  }
}

/* The type a value carries, as the server derives it: an array's from its element_type or
 * its first item, a map's from its map_type or its first entry. NULL when out of memory. */
static Type *type_of(const Value *v, lh_arena *a) {
  Type *t = new_type(a);
  if (!t || is_null(v)) return t;
  int prim = primitive_of(v);
  if (prim >= 0) {
    t->defined_type_case = T_PRIMITIVE;
    t->primitive_type = (Littlehorse__VariableType)prim;
    return t;
  }
  if (v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_STRUCT) {
    static Littlehorse__StructDefId none = LITTLEHORSE__STRUCT_DEF_ID__INIT;
    t->defined_type_case = T_STRUCT;
    t->struct_def_id = v->struct_->struct_def_id ? v->struct_->struct_def_id : &none;
  } else if (v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_ARRAY) {
    Littlehorse__InlineArrayDef *d = lh_arena_alloc(a, sizeof *d);
    if (!d) return NULL;
    Littlehorse__InlineArrayDef init = LITTLEHORSE__INLINE_ARRAY_DEF__INIT;
    *d = init;
    const Littlehorse__Array *arr = v->array;
    d->array_type = arr->element_type ? arr->element_type : arr->n_items ? type_of(arr->items[0], a) : new_type(a);
    if (!d->array_type) return NULL;
    t->defined_type_case = T_ARRAY;
    t->inline_array_def = d;
  } else if (v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_MAP) {
    const Littlehorse__Map *m = v->map;
    t->defined_type_case = T_MAP;
    if (m->map_type) {
      t->inline_map_def = m->map_type;
      return t;
    }
    Littlehorse__InlineMapDef *d = lh_arena_alloc(a, sizeof *d);
    if (!d) return NULL;
    Littlehorse__InlineMapDef init = LITTLEHORSE__INLINE_MAP_DEF__INIT;
    *d = init;
    d->key_type = m->n_entries ? type_of(m->entries[0]->key, a) : new_type(a);
    d->value_type = m->n_entries ? type_of(m->entries[0]->value, a) : new_type(a);
    if (!d->key_type || !d->value_type) return NULL;
    t->inline_map_def = d;
  }
  return t;
}

static int same_bytes(const ProtobufCMessage *x, const ProtobufCMessage *y, lh_arena *a) {
  size_t nx = protobuf_c_message_get_packed_size(x), ny = protobuf_c_message_get_packed_size(y);
  if (nx != ny) return 0;
  uint8_t *bx = lh_arena_alloc(a, nx + 1), *by = lh_arena_alloc(a, ny + 1);
  if (!bx || !by) return 1;
  protobuf_c_message_pack(x, bx);
  protobuf_c_message_pack(y, by);
  return memcmp(bx, by, nx) == 0;
}

/* Equal types, field by field (the mask included); an absent type equals only an absent one. */
static int equal(const Type *x, const Type *y, lh_arena *a) {
  if (!x || !y) return x == y;
  if (x->defined_type_case != y->defined_type_case || !x->masked != !y->masked) return 0;
  switch (x->defined_type_case) {
  case T_PRIMITIVE: return x->primitive_type == y->primitive_type;
  case T_STRUCT:
    return strcmp(str(x->struct_def_id->name), str(y->struct_def_id->name)) == 0 &&
           x->struct_def_id->version == y->struct_def_id->version;
  case T_ARRAY: return equal(x->inline_array_def->array_type, y->inline_array_def->array_type, a);
  case T_MAP:
    return equal(x->inline_map_def->key_type, y->inline_map_def->key_type, a) &&
           equal(x->inline_map_def->value_type, y->inline_map_def->value_type, a);
  case T_INLINE_STRUCT: return same_bytes(&x->inline_struct_def->base, &y->inline_struct_def->base, a);
  default: return 1;
  }
}

/* A value of primitive type `from` where `to` is wanted. */
static int castable(int from, int to) {
  if (from == to) return 1;
  if (to == LITTLEHORSE__VARIABLE_TYPE__STR)
    return from == LITTLEHORSE__VARIABLE_TYPE__INT || from == LITTLEHORSE__VARIABLE_TYPE__DOUBLE ||
           from == LITTLEHORSE__VARIABLE_TYPE__BOOL || from == LITTLEHORSE__VARIABLE_TYPE__BYTES ||
           from == LITTLEHORSE__VARIABLE_TYPE__WF_RUN_ID;
  return from == LITTLEHORSE__VARIABLE_TYPE__INT && to == LITTLEHORSE__VARIABLE_TYPE__DOUBLE;
}

/* Can a value of type `got` go where `want` is expected? */
static int compatible(const Type *want, const Type *got, lh_arena *a) {
  if (unset(want) || unset(got)) return 1;
  if (want->defined_type_case != got->defined_type_case) return 0;
  switch (want->defined_type_case) {
  case T_PRIMITIVE: return castable(got->primitive_type, want->primitive_type);
  case T_STRUCT: return strcmp(str(want->struct_def_id->name), str(got->struct_def_id->name)) == 0;
  case T_ARRAY:
    if (unset(got->inline_array_def->array_type)) return 1; /* an empty array fits any */
    return equal(want->inline_array_def->array_type, got->inline_array_def->array_type, a);
  case T_MAP: {
    const Littlehorse__InlineMapDef *g = got->inline_map_def;
    if (unset(g->key_type) && unset(g->value_type)) return 1;
    return equal(want->inline_map_def->key_type, g->key_type, a) &&
           equal(want->inline_map_def->value_type, g->value_type, a);
  }
  default: return 0;
  }
}

/* The server's text for a type ("Array<INT>", "Struct<order,v3>", "STR MASKED"). */
static void text(lh_buf *b, const Type *t) {
  char tmp[48];
  const char *s = NULL;
  if (!t) s = "null";
  else if (t->defined_type_case == T_PRIMITIVE) s = lh_type_primitive_name(t->primitive_type);
  else if (t->defined_type_case == T_INLINE_STRUCT) s = "INLINE_STRUCT_DEF";
  else if (t->defined_type_case == T_UNSET) s = "DEFINEDTYPE_NOT_SET";
  if (t && t->defined_type_case == T_PRIMITIVE && !s) s = "UNRECOGNIZED";
  if (s) {
    if (lh_buf_reserve(b, strlen(s))) lh_buf_put_unchecked(b, s, strlen(s));
  } else if (t->defined_type_case == T_STRUCT) {
    const char *name = str(t->struct_def_id->name);
    if (lh_buf_reserve(b, strlen(name) + 7)) {
      lh_buf_put_unchecked(b, "Struct<", 7);
      lh_buf_put_unchecked(b, name, strlen(name));
    }
    int n = snprintf(tmp, sizeof tmp, ",v%d>", (int)t->struct_def_id->version);
    if (lh_buf_reserve(b, (size_t)n)) lh_buf_put_unchecked(b, tmp, (size_t)n);
  } else if (t->defined_type_case == T_ARRAY) {
    if (lh_buf_reserve(b, 6)) lh_buf_put_unchecked(b, "Array<", 6);
    text(b, t->inline_array_def->array_type);
    if (lh_buf_reserve(b, 1)) lh_buf_put_unchecked(b, ">", 1);
  } else if (t->defined_type_case == T_MAP) {
    if (lh_buf_reserve(b, 4)) lh_buf_put_unchecked(b, "Map<", 4);
    text(b, t->inline_map_def->key_type);
    if (lh_buf_reserve(b, 2)) lh_buf_put_unchecked(b, ", ", 2);
    text(b, t->inline_map_def->value_type);
    if (lh_buf_reserve(b, 1)) lh_buf_put_unchecked(b, ">", 1);
  }
  if (t && t->masked && lh_buf_reserve(b, 7)) lh_buf_put_unchecked(b, " MASKED", 7);
}

typedef struct ctx {
  lh_arena *a;
  lh_typecheck_result *out;
} ctx;

/* fmt has two %s: the content's type, then the expected one. Returns 0 (does not fit). */
static int mismatch(ctx *c, const char *fmt, const Type *got, const Type *want) {
  lh_buf g = { 0 }, w = { 0 };
  text(&g, got);
  text(&w, want);
  size_t n = strlen(fmt) + g.len + w.len;
  char *d = lh_arena_alloc(c->a, n + 1);
  if (d) snprintf(d, n + 1, fmt, (int)g.len, g.data ? g.data : "", (int)w.len, w.data ? w.data : "");
  c->out->detail = d ? d : "Invalid type of content";
  lh_buf_free(&g);
  lh_buf_free(&w);
  return 0;
}

/* The def's element and map types written into the content (PutExternalEvent does this
 * before it checks), recursively. */
static void pin(const Type *t, Value *v) {
  if (!t || is_null(v)) return;
  if (t->defined_type_case == T_ARRAY && v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_ARRAY) {
    Type *elem = t->inline_array_def->array_type;
    v->array->element_type = elem;
    for (size_t i = 0; i < v->array->n_items; i++) pin(elem, v->array->items[i]);
  } else if (t->defined_type_case == T_MAP && v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_MAP) {
    Littlehorse__InlineMapDef *m = t->inline_map_def;
    v->map->map_type = m;
    for (size_t i = 0; i < v->map->n_entries; i++) {
      pin(m->key_type, v->map->entries[i]->key);
      pin(m->value_type, v->map->entries[i]->value);
    }
  }
}

static int check(ctx *c, const Type *t, const Value *v) {
  if (is_null(v) || unset(t)) return 1;
  Type *got = type_of(v, c->a);
  if (!got) return 1;
  if (!compatible(t, got, c->a)) return mismatch(c, "Value of type %.*s is not compatible with expected type %.*s", got, t);
  if (v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_ARRAY) {
    const Type *elem = t->inline_array_def->array_type;
    for (size_t i = 0; elem && i < v->array->n_items; i++) {
      Type *it = type_of(v->array->items[i], c->a);
      if (it && !compatible(elem, it, c->a)) {
        snprintf(c->out->path, sizeof c->out->path, "[%zu]", i + 1);
        return mismatch(c, "Array element type %.*s incompatible with expected element type %.*s", it, elem);
      }
    }
  } else if (v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_MAP) {
    const Littlehorse__InlineMapDef *m = t->inline_map_def;
    for (size_t i = 0; i < v->map->n_entries; i++) {
      const Littlehorse__Map__Entry *e = v->map->entries[i];
      Type *k = unset(m->key_type) ? NULL : type_of(e->key, c->a);
      if (k && !compatible(m->key_type, k, c->a)) {
        snprintf(c->out->path, sizeof c->out->path, "[%zu][1]", i + 1);
        return mismatch(c, "Map key type %.*s incompatible with expected key type %.*s", k, m->key_type);
      }
      Type *x = unset(m->value_type) ? NULL : type_of(e->value, c->a);
      if (x && !compatible(m->value_type, x, c->a)) {
        snprintf(c->out->path, sizeof c->out->path, "[%zu][2]", i + 1);
        return mismatch(c, "Map value type %.*s incompatible with expected value type %.*s", x, m->value_type);
      }
    }
  }
  return 1;
}

int lh_typecheck(const Littlehorse__ReturnType *rt, Littlehorse__VariableValue *v, int correlated, lh_arena *a,
                 lh_typecheck_result *out) {
  ctx c = { a, out };
  out->detail = NULL;
  out->path[0] = '\0';
  if (!rt->return_type) {
    if (!correlated || is_null(v)) return 1;
    out->detail = "Expected void return type, but value is not empty.";
    return 0;
  }
  if (!correlated) pin(rt->return_type, v);
  return check(&c, rt->return_type, v);
}
