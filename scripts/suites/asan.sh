# Sourced by scripts/test.sh: the whole spec suite again, with littlehorse.core built with
# AddressSanitizer + UndefinedBehaviorSanitizer (scripts/build-variant.sh asan) and the
# sanitizer runtimes preloaded into the uninstrumented lua5.4. TAP: build/tap/asan.tap.
# Then the conversion and async specs under LuaJIT the same way (the module built with
# LuaJIT's headers: LH_RUNTIME=luajit scripts/build-variant.sh asan; ASAN_LUAJIT_SPECS
# overrides the list). TAP: build/tap/asan-luajit.tap.
#
# Fails (a `not ok` line) on any sanitizer report from the Lua process that runs the specs,
# leaks included (LeakSanitizer is on: the module shuts gRPC down when the Lua state closes,
# and busted closes its state, so nothing gRPC allocates is left), and on any ASan/UBSan
# error in any other lua5.4 process the specs start. Two canaries check that the sanitizers
# really are armed in this set-up (a heap overflow and a leak in a throwaway module must be
# reported), so a broken preload cannot pass silently.
(
  set -u
  sh scripts/deps-extra.sh gcc libgcc-12-dev python3-grpcio

  out=$PWD/build/asan
  ASAN_LIB=$(gcc -print-file-name=libasan.so)
  UBSAN_LIB=$(gcc -print-file-name=libubsan.so)
  BUSTED=$(command -v busted)
  mkdir -p "$out"

  # LeakSanitizer suppressions: third-party leaks we cannot fix (stacks taken with
  # fast_unwind_on_malloc=0; matched on the frames fast unwinding still sees):
  # - c-ares 1.18.1 (Debian 12) leaks the copied name of each `localhost` lookup that gRPC's
  #   DNS resolver makes (ares_gethostbyname -> ares_getaddrinfo), 10 bytes per resolution.
  # - libp11-kit's constructor (run when a spec dlopens a module that pulls it in) keeps a
  #   newlocale() object forever: 40 bytes from __argz_add_sep.
  printf '%s\n' 'leak:libcares.so' 'leak:__argz_add_sep' >"$out/lsan.supp"

  # asan_run NAME RUNTIME [busted args...]: one sanitized busted run under RUNTIME (5.4 or
  # luajit), its TAP build/tap/NAME.tap, its wrapper and reports in build/NAME/, judged below.
  asan_run() {
    aname=$1; runtime=$2; shift 2
    case "$runtime" in
      luajit) interp=luajit; modver=5.1; luapkg=luajit; V=$PWD/build/asan-luajit/lua_modules ;;
      *) interp=lua5.4; modver=5.4; luapkg=lua5.4; V=$out/lua_modules ;;
    esac
    tap=build/tap/$aname.tap
    if ! LH_RUNTIME=$runtime sh scripts/build-variant.sh asan; then
      echo "not ok - $aname: the module does not build with -fsanitize=address,undefined" >"$tap"
      return 0
    fi
    dir=$PWD/build/$aname # build/asan: the 5.4 variant tree, its wrapper and reports; build/asan-luajit likewise
    logs=$dir/reports
    rm -rf "$logs" && mkdir -p "$logs" "$dir/bin"
    LUA_INC=$(pkg-config --cflags $luapkg)

    # Children of the specs' process (dev servers, shells, CLI runs, child Lua processes)
    # inherit the preload, so a child that loads this variant's module works, but they run
    # without leak detection (a busted helper sets their options once ours are read): a child
    # may exit without closing its client, and its leaks at exit are not this process's.
    printf '%s\n' '#include <stdlib.h>' '#include <lua.h>' \
      'int luaopen_lh_asan_env(lua_State *L) {' \
      '  const char *child = getenv("LH_CHILD_ASAN_OPTIONS");' \
      '  if (child) setenv("ASAN_OPTIONS", child, 1);' \
      '  (void)L; return 0;' '}' >"$dir/envfix.c"
    gcc -O1 -fPIC -shared $LUA_INC -o "$dir/envfix.so" "$dir/envfix.c"
    echo "package.loadlib('$dir/envfix.so', 'luaopen_lh_asan_env')()" >"$dir/helper.lua"

    # `busted` for run_busted: the interpreter straight away (no re-exec through a shell by
    # busted's `lua` setting), the sanitizer runtimes preloaded, the variant's tree first on
    # the paths. Its pid (the exec keeps it) names the report files of the process that runs
    # the specs.
    common="halt_on_error=1:abort_on_error=0:log_path=$logs/asan:log_exe_name=1"
    {
      echo '#!/bin/sh'
      echo "echo \$\$ >'$logs/main.pid'"
      echo "export LD_PRELOAD='$ASAN_LIB $UBSAN_LIB'"
      echo "export ASAN_OPTIONS='detect_leaks=1:$common'"
      echo "export LH_CHILD_ASAN_OPTIONS='detect_leaks=0:$common'"
      echo "export LSAN_OPTIONS='suppressions=$out/lsan.supp:print_suppressions=0'"
      echo "export UBSAN_OPTIONS='print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan:log_exe_name=1'"
      echo "export LH_SPEC_TREE='$V'"
      echo "exec $interp '$BUSTED' --ignore-lua --helper='$dir/helper.lua' --cpath='$V/lib/lua/$modver/?.so' \\"
      echo "  --lpath='$V/share/lua/$modver/?.lua;$V/share/lua/$modver/?/init.lua;./spec/support/?.lua' \"\$@\""
    } >"$dir/bin/busted"
    chmod +x "$dir/bin/busted"

    PATH="$dir/bin:$PATH" run_busted "$aname" "$@"

    # Canaries: the same preload must report a heap overflow and a leak in a throwaway module
    # loaded by the same interpreter.
    mkdir -p "$dir/canary"
    printf '%s\n' '#include <stdlib.h>' '#include <string.h>' '#include <lua.h>' \
      'static int overflow(lua_State *L) { char *p = malloc(8); volatile int i = 8; p[i] = 1; free(p); (void)L; return 0; }' \
      'static int leak(lua_State *L) { void *volatile p = malloc(4242); memset(p, 1, 4242); p = NULL; (void)L; return 0; }' \
      'int luaopen_canary(lua_State *L) {' \
      '  lua_newtable(L);' \
      '  lua_pushcfunction(L, overflow); lua_setfield(L, -2, "overflow");' \
      '  lua_pushcfunction(L, leak); lua_setfield(L, -2, "leak");' \
      '  return 1;' '}' >"$dir/canary/canary.c"
    canary_ok=1
    if gcc -O0 -g -fPIC -shared -fsanitize=address,undefined $LUA_INC \
         -o "$dir/canary/canary.so" "$dir/canary/canary.c" 2>"$dir/canary/build.log"; then
      for what in overflow leak; do
        rm -rf "$dir/canary/$what" && mkdir -p "$dir/canary/$what"
        LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" ASAN_OPTIONS="detect_leaks=1:log_path=$dir/canary/$what/asan" \
          LSAN_OPTIONS="suppressions=$out/lsan.supp" LUA_CPATH="$dir/canary/?.so" \
          $interp -e "require('canary').$what()" >/dev/null 2>&1
        pattern="heap-buffer-overflow"; [ "$what" = leak ] && pattern="4242 byte"
        grep -qs "$pattern" "$dir/canary/$what"/asan.* || canary_ok=0
      done
    else
      canary_ok=0
    fi
    if [ "$canary_ok" = 1 ]; then
      echo "ok - $aname: canaries (a heap overflow and a leak) are reported in this set-up" >>"$tap"
    else
      echo "not ok - $aname: the canary heap overflow or leak was NOT reported: the sanitizers are not armed" >>"$tap"
    fi

    # Reports. The specs' own process: anything at all. Other processes of the interpreter
    # (they run without leak detection, so only memory errors and UB can be there). Other
    # programs (dev servers, shells, python) are listed, not judged here.
    main=$(cat "$logs/main.pid" 2>/dev/null || echo none)
    bad=""
    others=""
    tool_crash=""
    for f in "$logs"/asan.* "$logs"/ubsan.*; do
      [ -f "$f" ] || continue
      case "$f" in
        *.lua5.4.*|*.luajit.*)
          # LeakSanitizer's own tracer can crash at exit ("Tracer caught signal 11 ... LeakSanitizer
          # has encountered a fatal error") while threads are still winding down: no finding,
          # but no leak check either. Counted as skipped, not passed; anything else is a finding.
          if grep -q "LeakSanitizer has encountered a fatal error" "$f" \
             && ! grep -qE "ERROR: (AddressSanitizer|LeakSanitizer: detected)|runtime error:" "$f"; then
            tool_crash="$tool_crash $f"
          else
            bad="$bad $f"
          fi ;;
        *) others="$others $(basename "$f")" ;;
      esac
    done
    [ -n "$tool_crash" ] && echo "ok - $aname: leak check at exit # SKIP LeakSanitizer's tracer crashed in:$tool_crash" >>"$tap"
    [ -n "$others" ] && echo "   $aname: reports from other programs (not judged):$others"
    if [ -z "$bad" ]; then
      echo "ok - $aname: no AddressSanitizer, LeakSanitizer or UBSan report from the Lua processes" >>"$tap"
    else
      echo "not ok - $aname: sanitizer reports (the specs' process is $interp.$main) in:$bad" >>"$tap"
      for f in $bad; do
        echo "# --- $f"
        grep -E "ERROR|SUMMARY|runtime error|^    #[0-9]+ " "$f" | head -40 | sed 's/^/# /'
      done | tee -a "$tap"
    fi
  }

  asan_run asan 5.4
  # shellcheck disable=SC2086
  asan_run asan-luajit luajit --exclude-tags=subtype \
    ${ASAN_LUAJIT_SPECS:-spec/client_spec.lua spec/mapping_spec.lua spec/bad_input_spec.lua spec/wire_spec.lua spec/json_spec.lua spec/nul_strings_spec.lua spec/lifetime_spec.lua spec/event_writer_spec.lua spec/event_reader_spec.lua spec/async_spec.lua}
)
