/* typecheck.c: see typecheck.h. Types are compared as TypeDefinition messages: the type of a
 * value is built in the arena the way the real server derives it (VariableValueModel
 * .getTypeDefinition), then checked with its isCompatibleWith and printed with its toString. */
#include "typecheck.h"

#include <stdio.h>
#include <string.h>

#include "rpcutil.h"
#include "wire.h"

typedef Littlehorse__TypeDefinition TypeDef;
typedef Littlehorse__VariableValue Value;

#define CASE_NOT_SET LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE__NOT_SET
#define CASE_PRIMITIVE LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_PRIMITIVE_TYPE
#define CASE_STRUCT LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_STRUCT_DEF_ID
#define CASE_ARRAY LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_ARRAY_DEF
#define CASE_INLINE_STRUCT LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_STRUCT_DEF
#define CASE_MAP LITTLEHORSE__TYPE_DEFINITION__DEFINED_TYPE_INLINE_MAP_DEF

/* Allocation failures while building types give up on checking (the content is accepted):
 * a dev server short of memory has bigger problems than a lenient type check. */
typedef struct ctx {
    arena *a;
    const char **detail;
} ctx;

static int is_null_type(const TypeDef *t) { return t->defined_type_case == CASE_NOT_SET; }
static int value_is_null(const Value *v) { return !v || v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE__NOT_SET; }

static TypeDef *new_type(arena *a)
{
    TypeDef *t = arena_alloc(a, sizeof *t);
    if (t) littlehorse__type_definition__init(t);
    return t;
}

/* The VariableType a primitive member stands for, or -1 for containers and NULL. */
static int primitive_of(const Value *v)
{
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

/* The type of a value (never NULL unless out of memory). */
static TypeDef *type_of(const Value *v, arena *a)
{
    TypeDef *t = new_type(a);
    if (!t || value_is_null(v)) return t;
    int prim = primitive_of(v);
    if (prim >= 0) {
        t->defined_type_case = CASE_PRIMITIVE;
        t->primitive_type = (Littlehorse__VariableType)prim;
        return t;
    }
    switch (v->value_case) {
    case LITTLEHORSE__VARIABLE_VALUE__VALUE_STRUCT: {
        static Littlehorse__StructDefId no_id = LITTLEHORSE__STRUCT_DEF_ID__INIT;
        t->defined_type_case = CASE_STRUCT;
        t->struct_def_id = v->struct_->struct_def_id ? v->struct_->struct_def_id : &no_id;
        return t;
    }
    case LITTLEHORSE__VARIABLE_VALUE__VALUE_ARRAY: {
        Littlehorse__InlineArrayDef *d = arena_alloc(a, sizeof *d);
        if (!d) return NULL;
        littlehorse__inline_array_def__init(d);
        const Littlehorse__Array *arr = v->array;
        if (arr->element_type) d->array_type = arr->element_type;
        else if (arr->n_items == 0) d->array_type = new_type(a);
        else d->array_type = type_of(arr->items[0], a);
        if (!d->array_type) return NULL;
        t->defined_type_case = CASE_ARRAY;
        t->inline_array_def = d;
        return t;
    }
    case LITTLEHORSE__VARIABLE_VALUE__VALUE_MAP: {
        const Littlehorse__Map *m = v->map;
        t->defined_type_case = CASE_MAP;
        if (m->map_type) {
            t->inline_map_def = m->map_type;
            return t;
        }
        Littlehorse__InlineMapDef *d = arena_alloc(a, sizeof *d);
        if (!d) return NULL;
        littlehorse__inline_map_def__init(d);
        if (m->n_entries == 0) {
            d->key_type = new_type(a);
            d->value_type = new_type(a);
        } else {
            d->key_type = type_of(m->entries[0]->key, a);
            d->value_type = type_of(m->entries[0]->value, a);
        }
        if (!d->key_type || !d->value_type) return NULL;
        t->inline_map_def = d;
        return t;
    }
    default: return t;
    }
}

static int same_packed(const ProtobufCMessage *x, const ProtobufCMessage *y, arena *a)
{
    size_t nx = protobuf_c_message_get_packed_size(x), ny = protobuf_c_message_get_packed_size(y);
    if (nx != ny) return 0;
    uint8_t *bx = arena_alloc(a, nx + 1), *by = arena_alloc(a, ny + 1);
    if (!bx || !by) return 1;
    protobuf_c_message_pack(x, bx);
    protobuf_c_message_pack(y, by);
    return memcmp(bx, by, nx) == 0;
}

/* Field-by-field equality (TypeDefinitionModel.equals); NULL equals only NULL. */
static int type_equal(const TypeDef *x, const TypeDef *y, arena *a)
{
    if (!x || !y) return x == y;
    if (x->defined_type_case != y->defined_type_case || !x->masked != !y->masked) return 0;
    switch (x->defined_type_case) {
    case CASE_PRIMITIVE: return x->primitive_type == y->primitive_type;
    case CASE_STRUCT:
        return strcmp(str_or_empty(x->struct_def_id->name), str_or_empty(y->struct_def_id->name)) == 0 &&
               x->struct_def_id->version == y->struct_def_id->version;
    case CASE_ARRAY: return type_equal(x->inline_array_def->array_type, y->inline_array_def->array_type, a);
    case CASE_MAP:
        return type_equal(x->inline_map_def->key_type, y->inline_map_def->key_type, a) &&
               type_equal(x->inline_map_def->value_type, y->inline_map_def->value_type, a);
    case CASE_INLINE_STRUCT:
        return same_packed(&x->inline_struct_def->base, &y->inline_struct_def->base, a);
    default: return 1;
    }
}

/* TypeCastingUtils.canBeType */
static int can_be(int source, int target)
{
    if (source == target) return 1;
    if (target == LITTLEHORSE__VARIABLE_TYPE__STR)
        return source == LITTLEHORSE__VARIABLE_TYPE__STR || source == LITTLEHORSE__VARIABLE_TYPE__INT ||
               source == LITTLEHORSE__VARIABLE_TYPE__DOUBLE || source == LITTLEHORSE__VARIABLE_TYPE__BOOL ||
               source == LITTLEHORSE__VARIABLE_TYPE__BYTES || source == LITTLEHORSE__VARIABLE_TYPE__WF_RUN_ID;
    return source == LITTLEHORSE__VARIABLE_TYPE__INT && target == LITTLEHORSE__VARIABLE_TYPE__DOUBLE;
}

static int null_or_unset(const TypeDef *t) { return !t || is_null_type(t); }

/* Can a value of type `other` be used where `expected` is wanted (isCompatibleWith)? */
static int compatible(const TypeDef *expected, const TypeDef *other, arena *a)
{
    if (is_null_type(expected) || is_null_type(other)) return 1;
    if (expected->defined_type_case != other->defined_type_case) return 0;
    switch (expected->defined_type_case) {
    case CASE_PRIMITIVE: return can_be(other->primitive_type, expected->primitive_type);
    case CASE_STRUCT:
        return strcmp(str_or_empty(expected->struct_def_id->name), str_or_empty(other->struct_def_id->name)) == 0;
    case CASE_ARRAY:
        /* an element type left open (an empty array) fits any */
        if (null_or_unset(other->inline_array_def->array_type)) return 1;
        return type_equal(expected->inline_array_def->array_type, other->inline_array_def->array_type, a);
    case CASE_MAP: {
        const Littlehorse__InlineMapDef *o = other->inline_map_def;
        if (null_or_unset(o->key_type) && null_or_unset(o->value_type)) return 1;
        return type_equal(expected->inline_map_def->key_type, o->key_type, a) &&
               type_equal(expected->inline_map_def->value_type, o->value_type, a);
    }
    default: return 0;
    }
}

static const char *primitive_name(int t)
{
    static const char *const names[] = { "JSON_OBJ", "JSON_ARR", "DOUBLE", "BOOL", "STR",
                                         "INT", "BYTES", "WF_RUN_ID", "TIMESTAMP" };
    return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "UNRECOGNIZED";
}

static void put_str(wbuf *b, const char *s) { wbuf_put(b, s, strlen(s)); }

/* TypeDefinitionModel.toString, appended to b ("null" for NULL, as Java formats it). */
static void type_text(wbuf *b, const TypeDef *t)
{
    if (!t) {
        put_str(b, "null");
        return;
    }
    switch (t->defined_type_case) {
    case CASE_PRIMITIVE: put_str(b, primitive_name(t->primitive_type)); break;
    case CASE_STRUCT: {
        char v[16];
        put_str(b, "Struct<");
        put_str(b, str_or_empty(t->struct_def_id->name));
        snprintf(v, sizeof v, ",v%d>", (int)t->struct_def_id->version);
        put_str(b, v);
        break;
    }
    case CASE_ARRAY:
        put_str(b, "Array<");
        type_text(b, t->inline_array_def->array_type);
        put_str(b, ">");
        break;
    case CASE_MAP:
        put_str(b, "Map<");
        type_text(b, t->inline_map_def->key_type);
        put_str(b, ", ");
        type_text(b, t->inline_map_def->value_type);
        put_str(b, ">");
        break;
    case CASE_INLINE_STRUCT: put_str(b, "INLINE_STRUCT_DEF"); break;
    default: put_str(b, "DEFINEDTYPE_NOT_SET"); break;
    }
    if (t->masked) put_str(b, " MASKED");
}

/* fmt has two %s: the value's type, then the expected one. Returns -1 (does not fit). */
static int mismatch(ctx *c, const char *fmt, const TypeDef *got, const TypeDef *want)
{
    wbuf g, w;
    wbuf_init(&g, c->a);
    wbuf_init(&w, c->a);
    type_text(&g, got);
    type_text(&w, want);
    wbuf_put(&g, "", 1);
    wbuf_put(&w, "", 1);
    *c->detail = g.oom || w.oom ? "type mismatch" : arena_printf(c->a, fmt, (const char *)g.p, (const char *)w.p);
    return -1;
}

/* The real server's IngressTypeUtils.applyExpectedType: the expected element / map types
 * replace the ones the content carries, recursively. */
static void pin(const TypeDef *t, Value *v)
{
    if (!t || value_is_null(v)) return;
    if (t->defined_type_case == CASE_ARRAY && v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_ARRAY) {
        const TypeDef *elem = t->inline_array_def->array_type;
        v->array->element_type = (TypeDef *)elem;
        for (size_t i = 0; i < v->array->n_items; i++) pin(elem, v->array->items[i]);
    } else if (t->defined_type_case == CASE_MAP && v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_MAP) {
        const Littlehorse__InlineMapDef *m = t->inline_map_def;
        v->map->map_type = (Littlehorse__InlineMapDef *)m;
        for (size_t i = 0; i < v->map->n_entries; i++) {
            pin(m->key_type, v->map->entries[i]->key);
            pin(m->value_type, v->map->entries[i]->value);
        }
    }
}

/* TypeDefinitionModel.validateCompatibility */
static int validate(ctx *c, const TypeDef *t, const Value *v)
{
    if (value_is_null(v) || is_null_type(t)) return 0;
    TypeDef *got = type_of(v, c->a);
    if (!got) return 0;
    if (!compatible(t, got, c->a))
        return mismatch(c, "Value of type %s is not compatible with expected type %s", got, t);
    if (v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_ARRAY) {
        const TypeDef *elem = t->inline_array_def->array_type;
        if (!elem) return 0;
        for (size_t i = 0; i < v->array->n_items; i++) {
            TypeDef *it = type_of(v->array->items[i], c->a);
            if (it && !compatible(elem, it, c->a))
                return mismatch(c, "Array element type %s incompatible with expected element type %s", it, elem);
        }
    } else if (v->value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE_MAP) {
        const Littlehorse__InlineMapDef *m = t->inline_map_def;
        for (size_t i = 0; i < v->map->n_entries; i++) {
            const Littlehorse__Map__Entry *e = v->map->entries[i];
            if (!null_or_unset(m->key_type)) {
                TypeDef *k = type_of(e->key, c->a);
                if (k && !compatible(m->key_type, k, c->a))
                    return mismatch(c, "Map key type %s incompatible with expected key type %s", k, m->key_type);
            }
            if (!null_or_unset(m->value_type)) {
                TypeDef *x = type_of(e->value, c->a);
                if (x && !compatible(m->value_type, x, c->a))
                    return mismatch(c, "Map value type %s incompatible with expected value type %s", x,
                                    m->value_type);
            }
        }
    }
    return 0;
}

int typecheck_put_event(const Littlehorse__TypeDefinition *t, Littlehorse__VariableValue *v, arena *a,
                        const char **detail)
{
    ctx c = { a, detail };
    pin(t, v);
    return validate(&c, t, v);
}

int typecheck_put_correlated(const Littlehorse__ReturnType *rt, const Littlehorse__VariableValue *v, arena *a,
                             const char **detail)
{
    ctx c = { a, detail };
    if (!rt->return_type) {
        if (value_is_null(v)) return 0;
        *detail = "Expected void return type, but value is not empty.";
        return -1;
    }
    return validate(&c, rt->return_type, v);
}
