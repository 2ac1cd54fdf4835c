/* typecheck.h: does an event's content fit its ExternalEventDef's type? The real server's
 * rules (TypeDefinitionModel.validateCompatibility and TypeCastingUtils.canBeType):
 *   - NULL content (no member set) always fits, and so does any content for a type that
 *     defines nothing;
 *   - a primitive fits its own type; INT also fits DOUBLE; STR, INT, DOUBLE, BOOL, BYTES and
 *     WF_RUN_ID also fit STR;
 *   - a Struct fits a StructDefId of the same name (its fields are not checked: the dev
 *     server has no StructDefs);
 *   - an Array is checked element by element against the array type, a Map key by key and
 *     value by value (one level: a nested container only has to be a container of the same
 *     kind, as on the real server).
 * Two entry points, because the real server checks the two put RPCs differently:
 * PutExternalEvent first pins the def's element / map types onto the content (so the
 * client's own element_type / map_type do not count), PutCorrelatedEvent checks the content
 * as sent and refuses any content for a ReturnType without a type ("void").
 * The detail texts are the real server's, e.g. "Value of type INT is not compatible with
 * expected type BOOL", "Array element type STR incompatible with expected element type INT". */
#ifndef LHDS_TYPECHECK_H
#define LHDS_TYPECHECK_H

#include "arena.h"
#include "type_definition.pb-c.h"

/* PutExternalEvent: `t` is the def's ReturnType.return_type (only called when it is set).
 * May change `v` (the pinned types), as the real server does. 0 if it fits, else -1 with
 * the detail in *detail (in `a`). */
int typecheck_put_event(const Littlehorse__TypeDefinition *t, Littlehorse__VariableValue *v, arena *a,
                        const char **detail);

/* PutCorrelatedEvent: `rt` is the def's type information. 0 if it fits, else -1 with the
 * detail in *detail (in `a`). */
int typecheck_put_correlated(const Littlehorse__ReturnType *rt, const Littlehorse__VariableValue *v, arena *a,
                             const char **detail);

#endif
