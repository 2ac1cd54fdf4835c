/* Does content fit an ExternalEventDef's type? The server's rules, checked in the client
 * (the `validate` option, core.check_content) so that content of the wrong type fails before
 * a round trip, naming where in the content it is wrong:
 *   - NULL content always fits; so does anything when the type defines nothing;
 *   - a primitive fits its own type; INT also fits DOUBLE; STR, INT, DOUBLE, BOOL, BYTES and
 *     WF_RUN_ID also fit STR;
 *   - a Struct fits a StructDefId of the same name (its fields are the server's business);
 *   - an Array is checked item by item against the array type, a Map key by key and value by
 *     value, one level deep (a nested container only has to have the same element types);
 *   - PutExternalEvent gives the content's arrays and maps the def's element types first (so
 *     [1, 2] fits Array<DOUBLE>); PutCorrelatedEvent compares the content as it is, and for a
 *     ReturnType without a type ("VOID") accepts only NULL content.
 * The texts are the server's ("Value of type STR is not compatible with expected type INT"). */
#ifndef LH_TYPECHECK_H
#define LH_TYPECHECK_H

#include "arena.h"
#include "buffer.h"
#include "type_definition.pb-c.h"

typedef struct lh_typecheck_result {
  const char *detail;  /* the server's text, in the arena; NULL when the content fits */
  char path[64];       /* where, below `content`: "", "[3]", "[2][1]" (a map entry's key) */
} lh_typecheck_result;

/* correlated: PutCorrelatedEvent's rules, else PutExternalEvent's (which may change v: the
 * def's element types are written into it). Returns 1 when v fits. */
int lh_typecheck(const Littlehorse__ReturnType *rt, Littlehorse__VariableValue *v, int correlated, lh_arena *a,
                 lh_typecheck_result *out);

#endif
