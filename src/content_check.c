/* core.check_content(type, content [, rpc]): content against a content type, as the server
 * would check it (typecheck.h), without a call. */
#include "content_check.h"
#include "keep.h"
#include "type_spec.h"
#include "typecheck.h"
#include "value.h"

static int check_content_body(lua_State *L) {
  static const char *const rpcs[] = { "PutExternalEvent", "PutCorrelatedEvent", NULL };
  lh_context *c = lh_context_get(L);
  int correlated = luaL_checkoption(L, 3, "PutExternalEvent", rpcs) == 1;
  lua_settop(L, 2);
  lh_keep_begin(L, c);
  lh_path troot = lh_path_root("check_content", 1), croot = lh_path_root("check_content", 2);
  lh_path pc = lh_path_field(&croot, "content", 7);
  Littlehorse__ReturnType *rt = lh_return_type_to_pb(L, 1, c, &troot);
  Littlehorse__VariableValue v = LITTLEHORSE__VARIABLE_VALUE__INIT;
  lh_value_to_pb(L, 2, c, &v, &pc);
  if (v.value_case == LITTLEHORSE__VARIABLE_VALUE__VALUE__NOT_SET && v.base.n_unknown_fields) {
    /* a str with NUL bytes travels as an unknown field (value.c, set_str): still a STR */
    v.value_case = LITTLEHORSE__VARIABLE_VALUE__VALUE_STR;
    v.str = (char *)"";
  }
  lh_typecheck_result r;
  int fits = lh_typecheck(rt, &v, correlated, &c->arena, &r);
  lh_keep_end(L, c);
  if (fits) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, r.detail);
  lua_pushfstring(L, "content%s", r.path);
  return 3;
}

int lh_check_content(lua_State *L) {
  return lh_context_protect(L, check_content_body);
}
