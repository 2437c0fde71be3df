#!/bin/sh
# test_lua_hooks.sh SOURCE_DIR: tests/test_lua_hooks.lua (the hook libraries, early_stop.lua,
# sweep_report.lua's corner cases) in a standalone Lua 5.4: lua5.4, else a `lua` that is 5.4.
# Skipped (77) where neither is installed (apt-get install lua5.4), unless CI=true: then it
# fails.
set -u
src=${1:?usage: test_lua_hooks.sh SOURCE_DIR}
lua=
if command -v lua5.4 >/dev/null 2>&1; then
    lua=lua5.4
elif command -v lua >/dev/null 2>&1 && lua -e 'os.exit(_VERSION == "Lua 5.4")' 2>/dev/null; then
    lua=lua
fi
if [ -z "$lua" ]; then
    if [ "${CI:-}" = true ]; then
        echo "FAIL: no Lua 5.4 interpreter (apt-get install lua5.4)"
        exit 1
    fi
    echo "skipped: no Lua 5.4 interpreter (apt-get install lua5.4)"
    exit 77
fi
exec "$lua" "$src/tests/test_lua_hooks.lua" "$src/hooks"
