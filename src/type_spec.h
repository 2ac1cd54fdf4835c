/* Content types of ExternalEventDefs, written as plain Lua (docs/api.md, "Content types"):
 *
 *   "INT"                                         a primitive: JSON_OBJ, JSON_ARR, DOUBLE, BOOL,
 *                                                 STR, INT, BYTES, WF_RUN_ID, TIMESTAMP
 *   { type = "STR", masked = true }               the same, masked
 *   { type = "ARRAY", array_type = T }            TypeDefinition.inline_array_def
 *   { type = "MAP", key_type = T, value_type = T }             .inline_map_def
 *   { type = "STRUCT", name = "order", version = 3 }           .struct_def_id
 *   { type = "INLINE_STRUCT", fields = { amount = T | { type = ..., is_nullable =,
 *       default_value = <value> }, ... } }                    .inline_struct_def
 *
 * (every table form takes masked = true), and for a ReturnType "VOID" (no type: only NULL
 * content). Replies use the same forms, a primitive without a mask as its name, so what a
 * def returns can be put again. */
#ifndef LH_TYPE_SPEC_H
#define LH_TYPE_SPEC_H

#include "compat.h"
#include "context.h"
#include "path.h"
#include "type_definition.pb-c.h"

/* The TypeDefinition written at idx; inside a conversion (keep.h). Misuse raises. */
Littlehorse__TypeDefinition *lh_type_to_pb(lua_State *L, int idx, lh_context *c, const lh_path *p);
/* The ReturnType: "VOID", or a type as above. */
Littlehorse__ReturnType *lh_return_type_to_pb(lua_State *L, int idx, lh_context *c, const lh_path *p);

void lh_type_push(lua_State *L, const lh_arena *a, const Littlehorse__TypeDefinition *t);
void lh_return_type_push(lua_State *L, const lh_arena *a, const Littlehorse__ReturnType *rt);

/* The VariableType name of a primitive ("INT"), or NULL. */
const char *lh_type_primitive_name(int t);

#endif
