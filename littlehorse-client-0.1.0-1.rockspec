rockspec_format = "3.0"
package = "littlehorse-client"
version = "0.1.0-1"
-- A release is the tag v<version> of this repository (CONTRIBUTING.md, "Releases"). From a
-- checkout, `make build` runs `luarocks make` on this file, which builds the working tree.
source = {
  url = "git+https://github.com/littlehorse-enterprises/littlehorse-client-lua.git",
  tag = "v0.1.0",
}
description = {
  summary = "LittleHorse client for Lua: post ExternalEvents over gRPC (C core), exactly once",
  detailed = [[
A C extension (littlehorse.core, on the gRPC C core and protobuf-c) that posts ExternalEvents
to a LittleHorse server, and a pure-Lua layer (littlehorse) with configuration and retry helpers.]],
  homepage = "https://github.com/littlehorse-enterprises/littlehorse-client-lua",
  issues_url = "https://github.com/littlehorse-enterprises/littlehorse-client-lua/issues",
  license = "Apache-2.0",
  labels = { "grpc", "littlehorse", "openresty" },
}
dependencies = { "lua >= 5.1, < 5.5" }
external_dependencies = {
  GRPC = { header = "grpc/grpc.h", library = "grpc" },
  PROTOBUF_C = { header = "protobuf-c/protobuf-c.h", library = "protobuf-c" },
  CURL = { library = "curl" }, -- no header check: Debian keeps curl.h in the multiarch include dir
  SQLITE = { header = "sqlite3.h", library = "sqlite3" }, -- the outbox's file
}
-- The specs (busted, with the project's .busted) run against dev server processes: build it
-- first (`make devserver`); `make check` and `make test` do both.
test = { type = "busted" }
build = {
  type = "builtin",
  modules = {
    -- Every src/*.c and the generated code they include (spec/rockspec_spec.lua checks it).
    ["littlehorse.core"] = {
      sources = {
        "src/arena.c", "src/async.c", "src/buffer.c", "src/call.c", "src/channel.c", "src/client.c",
        "src/compat.c", "src/content_check.c", "src/context.c", "src/core.c", "src/correlated.c",
        "src/error.c", "src/event_def.c", "src/event_reader.c", "src/event_writer.c",
        "src/handle.c", "src/http.c", "src/int64.c", "src/json.c", "src/keep.c", "src/listing.c",
        "src/messages.c", "src/numfmt.c", "src/object.c", "src/outbox.c", "src/outbox_record.c",
        "src/outbox_store.c", "src/outbox_writer.c", "src/path.c", "src/pbwire.c", "src/reply.c",
        "src/request.c", "src/rpc.c", "src/runtime.c", "src/timestamp.c", "src/type_spec.c",
        "src/typecheck.c", "src/utf8.c", "src/value.c", "src/wake.c",
        "src/gen/common_enums.pb-c.c", "src/gen/external_event.pb-c.c",
        "src/gen/google/protobuf/any.pb-c.c", "src/gen/google/protobuf/duration.pb-c.c",
        "src/gen/google/protobuf/empty.pb-c.c", "src/gen/google/protobuf/timestamp.pb-c.c",
        "src/gen/google/rpc/status.pb-c.c",
        "src/gen/object_id.pb-c.c", "src/gen/service.pb-c.c", "src/gen/type_definition.pb-c.c",
      },
      incdirs = { "src", "src/gen", "$(GRPC_INCDIR)", "$(PROTOBUF_C_INCDIR)", "$(CURL_INCDIR)", "$(SQLITE_INCDIR)" },
      libdirs = { "$(GRPC_LIBDIR)", "$(PROTOBUF_C_LIBDIR)", "$(CURL_LIBDIR)", "$(SQLITE_LIBDIR)" },
      libraries = { "grpc", "gpr", "protobuf-c", "curl", "sqlite3", "pthread", "dl" },
    },
    ["littlehorse"] = "lua/littlehorse/init.lua",
    ["littlehorse.bulk"] = "lua/littlehorse/bulk.lua",
    ["littlehorse.client"] = "lua/littlehorse/client.lua",
    ["littlehorse.config"] = "lua/littlehorse/config.lua",
    ["littlehorse.misuse"] = "lua/littlehorse/misuse.lua",
    ["littlehorse.oauth"] = "lua/littlehorse/oauth.lua",
    ["littlehorse.outbox"] = "lua/littlehorse/outbox.lua",
    ["littlehorse.outbox_delivery"] = "lua/littlehorse/outbox_delivery.lua",
    ["littlehorse.pages"] = "lua/littlehorse/pages.lua",
    ["littlehorse.resty"] = "lua/littlehorse/resty.lua",
    ["littlehorse.retry"] = "lua/littlehorse/retry.lua",
    ["littlehorse.sha256"] = "lua/littlehorse/sha256.lua",
    ["littlehorse.validate"] = "lua/littlehorse/validate.lua",
    ["littlehorse.values"] = "lua/littlehorse/values.lua",
  },
  install = { bin = { ["lh-put-event"] = "bin/lh-put-event" } },
  copy_directories = { "docs" },
}
