#include <string.h>
#include "listing.h"
#include "keep.h"
#include "reply.h"
#include "request.h"
#include "value.h"
#include "service.pb-c.h"

/* The page fields every list or search request shares. */
typedef struct page {
  const uint8_t *bookmark;
  size_t bookmark_len;
  int has_bookmark, has_limit;
  int32_t limit;
} page;

/* bookmark / limit at the value on the stack top, for field f (0 bookmark, 1 limit). An empty
 * bookmark is no bookmark (the server reads it so), as a reply's empty one is none. */
static void page_field(lua_State *L, lh_context *c, int f, const lh_path *p, page *pg) {
  if (f == 0) {
    pg->bookmark = lh_req_bookmark(L, c, lua_gettop(L), p, &pg->bookmark_len);
    pg->has_bookmark = pg->bookmark_len > 0;
  } else {
    pg->limit = lh_req_limit(L, lua_gettop(L), p);
    pg->has_limit = 1;
  }
}

/* Each packer converts inside lh_keep_begin .. lh_keep_end (keep.h). */
void lh_pack_list_external_events(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  static const char *const names[] = { "wf_run_id", "bookmark", "limit", NULL };
  static const char *what = "a ListExternalEvents request";
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  lh_req_table(L, idx, root, what);
  Littlehorse__ListExternalEventsRequest req = LITTLEHORSE__LIST_EXTERNAL_EVENTS_REQUEST__INIT;
  page pg = { 0 };
  lua_checkstack(L, 4);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int f = lh_req_field(L, root, names, what);
    lh_path p = lh_path_field(root, names[f], strlen(names[f]));
    if (f == 0) req.wf_run_id = lh_wf_run_id_to_pb(L, -1, c, &p);
    else page_field(L, c, f - 1, &p, &pg);
    lua_pop(L, 1);
  }
  if (!req.wf_run_id) {
    lh_path p = lh_path_field(root, "wf_run_id", 9);
    lh_path_error(L, &p, "required (a string, or { id = ..., parent_wf_run_id = ... })");
  }
  if (pg.has_bookmark) {
    req._bookmark_case = LITTLEHORSE__LIST_EXTERNAL_EVENTS_REQUEST___BOOKMARK_BOOKMARK;
    req.bookmark.data = (uint8_t *)pg.bookmark;
    req.bookmark.len = pg.bookmark_len;
  }
  if (pg.has_limit) {
    req._limit_case = LITTLEHORSE__LIST_EXTERNAL_EVENTS_REQUEST___LIMIT_LIMIT;
    req.limit = pg.limit;
  }
  lh_req_pack(L, c, &req.base);
  lh_keep_end(L, c);
}

/* The fields of SearchExternalEvent and SearchCorrelatedEvent requests; the last one is the
 * search's own flag (is_claimed, has_external_events). */
enum { S_BOOKMARK, S_LIMIT, S_EARLIEST, S_LATEST, S_DEF_NAME, S_DEF_ID, S_FLAG };

typedef struct search {
  page pg;
  Google__Protobuf__Timestamp *earliest, *latest;
  const char *def_name;
  int has_flag, flag;
} search;

static void read_search(lua_State *L, int idx, const lh_path *root, lh_context *c, const char *const names[],
                        const char *what, search *s) {
  memset(s, 0, sizeof *s);
  lh_req_table(L, idx, root, what);
  lua_checkstack(L, 4);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int f = lh_req_field(L, root, names, what);
    lh_path p = lh_path_field(root, names[f], strlen(names[f]));
    int v = lua_gettop(L);
    switch (f) {
    case S_BOOKMARK:
    case S_LIMIT: page_field(L, c, f - S_BOOKMARK, &p, &s->pg); break;
    case S_EARLIEST: s->earliest = lh_req_timestamp(L, c, v, &p); break;
    case S_LATEST: s->latest = lh_req_timestamp(L, c, v, &p); break;
    case S_DEF_NAME:
    case S_DEF_ID: lh_req_def_field(L, c, v, &p, f == S_DEF_ID, &s->def_name); break;
    case S_FLAG:
      s->flag = lh_req_boolean(L, v, &p);
      s->has_flag = 1;
      break;
    }
    lua_pop(L, 1);
  }
  lh_req_def_required(L, root, s->def_name);
}

void lh_pack_search_external_events(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  static const char *const names[] = { "bookmark", "limit", "earliest_start", "latest_start",
                                       "external_event_def_name", "external_event_def_id", "is_claimed", NULL };
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  search s;
  read_search(L, idx, root, c, names, "a SearchExternalEvent request", &s);
  Littlehorse__SearchExternalEventRequest req = LITTLEHORSE__SEARCH_EXTERNAL_EVENT_REQUEST__INIT;
  if (s.pg.has_bookmark) {
    req._bookmark_case = LITTLEHORSE__SEARCH_EXTERNAL_EVENT_REQUEST___BOOKMARK_BOOKMARK;
    req.bookmark.data = (uint8_t *)s.pg.bookmark;
    req.bookmark.len = s.pg.bookmark_len;
  }
  if (s.pg.has_limit) {
    req._limit_case = LITTLEHORSE__SEARCH_EXTERNAL_EVENT_REQUEST___LIMIT_LIMIT;
    req.limit = s.pg.limit;
  }
  req.earliest_start = s.earliest;
  req.latest_start = s.latest;
  req.external_event_def_id = lh_req_def_id(L, c, s.def_name);
  if (s.has_flag) {
    req._is_claimed_case = LITTLEHORSE__SEARCH_EXTERNAL_EVENT_REQUEST___IS_CLAIMED_IS_CLAIMED;
    req.is_claimed = s.flag;
  }
  lh_req_pack(L, c, &req.base);
  lh_keep_end(L, c);
}

void lh_pack_search_correlated_events(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  static const char *const names[] = { "bookmark", "limit", "earliest_start", "latest_start",
                                       "external_event_def_name", "external_event_def_id", "has_external_events",
                                       NULL };
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  search s;
  read_search(L, idx, root, c, names, "a SearchCorrelatedEvent request", &s);
  Littlehorse__SearchCorrelatedEventRequest req = LITTLEHORSE__SEARCH_CORRELATED_EVENT_REQUEST__INIT;
  if (s.pg.has_bookmark) {
    req._bookmark_case = LITTLEHORSE__SEARCH_CORRELATED_EVENT_REQUEST___BOOKMARK_BOOKMARK;
    req.bookmark.data = (uint8_t *)s.pg.bookmark;
    req.bookmark.len = s.pg.bookmark_len;
  }
  if (s.pg.has_limit) {
    req._limit_case = LITTLEHORSE__SEARCH_CORRELATED_EVENT_REQUEST___LIMIT_LIMIT;
    req.limit = s.pg.limit;
  }
  req.earliest_start = s.earliest;
  req.latest_start = s.latest;
  req.external_event_def_id = lh_req_def_id(L, c, s.def_name);
  if (s.has_flag) {
    req._has_external_events_case = LITTLEHORSE__SEARCH_CORRELATED_EVENT_REQUEST___HAS_EXTERNAL_EVENTS_HAS_EXTERNAL_EVENTS;
    req.has_external_events = s.flag;
  }
  lh_req_pack(L, c, &req.base);
  lh_keep_end(L, c);
}

void lh_pack_search_external_event_defs(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  static const char *const names[] = { "prefix", "bookmark", "limit", NULL };
  static const char *what = "a SearchExternalEventDef request";
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  Littlehorse__SearchExternalEventDefRequest req = LITTLEHORSE__SEARCH_EXTERNAL_EVENT_DEF_REQUEST__INIT;
  page pg = { 0 };
  if (!lua_isnoneornil(L, idx)) {
    lh_req_table(L, idx, root, what);
    lua_checkstack(L, 4);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      int f = lh_req_field(L, root, names, what);
      lh_path p = lh_path_field(root, names[f], strlen(names[f]));
      if (f == 0) {
        req._prefix_case = LITTLEHORSE__SEARCH_EXTERNAL_EVENT_DEF_REQUEST___PREFIX_PREFIX;
        req.prefix = (char *)lh_text_field(L, c, lua_gettop(L), &p, 0);
      } else {
        page_field(L, c, f - 1, &p, &pg);
      }
      lua_pop(L, 1);
    }
  }
  if (pg.has_bookmark) {
    req._bookmark_case = LITTLEHORSE__SEARCH_EXTERNAL_EVENT_DEF_REQUEST___BOOKMARK_BOOKMARK;
    req.bookmark.data = (uint8_t *)pg.bookmark;
    req.bookmark.len = pg.bookmark_len;
  }
  if (pg.has_limit) {
    req._limit_case = LITTLEHORSE__SEARCH_EXTERNAL_EVENT_DEF_REQUEST___LIMIT_LIMIT;
    req.limit = pg.limit;
  }
  lh_req_pack(L, c, &req.base);
  lh_keep_end(L, c);
}

/* ---- replies ---- */

/* The page table: { results = { n entries }, bookmark = }, results left on the stack top. */
static void begin_page(lua_State *L, size_t n) {
  lua_checkstack(L, 8);
  lua_createtable(L, 0, 2);
  lua_createtable(L, (int)n, 0);
}

static void end_page(lua_State *L, int has_bookmark, const ProtobufCBinaryData *bookmark) {
  lua_setfield(L, -2, "results");
  lh_reply_set_bookmark(L, has_bookmark, bookmark);
}

/* A page reply: its results, each pushed by push_item, and its bookmark (listing.h). */
#define PAGE_PUSHER(name, Type, descriptor, push_item, bookmark_case)                       \
  int name(lua_State *L, const char *bytes, size_t len, lh_context *c) {                    \
    Type *m = (Type *)lh_reply_unpack(c, &descriptor, bytes, len);                          \
    if (!m) return 0;                                                                       \
    begin_page(L, m->n_results);                                                            \
    for (size_t i = 0; i < m->n_results; i++) {                                             \
      push_item(L, &c->arena, m->results[i]);                                               \
      lua_rawseti(L, -2, (lua_Integer)i + 1);                                               \
    }                                                                                       \
    end_page(L, m->_bookmark_case == bookmark_case, &m->bookmark);                          \
    return 1;                                                                               \
  }

PAGE_PUSHER(lh_push_external_event_list, Littlehorse__ExternalEventList, littlehorse__external_event_list__descriptor, lh_reply_external_event,
            LITTLEHORSE__EXTERNAL_EVENT_LIST___BOOKMARK_BOOKMARK)
PAGE_PUSHER(lh_push_external_event_id_list, Littlehorse__ExternalEventIdList, littlehorse__external_event_id_list__descriptor, lh_reply_external_event_id,
            LITTLEHORSE__EXTERNAL_EVENT_ID_LIST___BOOKMARK_BOOKMARK)
PAGE_PUSHER(lh_push_correlated_event_id_list, Littlehorse__CorrelatedEventIdList, littlehorse__correlated_event_id_list__descriptor, lh_reply_correlated_event_id,
            LITTLEHORSE__CORRELATED_EVENT_ID_LIST___BOOKMARK_BOOKMARK)
PAGE_PUSHER(lh_push_external_event_def_id_list, Littlehorse__ExternalEventDefIdList, littlehorse__external_event_def_id_list__descriptor, lh_reply_def_id,
            LITTLEHORSE__EXTERNAL_EVENT_DEF_ID_LIST___BOOKMARK_BOOKMARK)

int lh_push_empty(lua_State *L, const char *bytes, size_t len, lh_context *c) {
  if (!lh_reply_unpack(c, &google__protobuf__empty__descriptor, bytes, len)) return 0;
  lua_pushboolean(L, 1);
  return 1;
}
