#!/usr/bin/env bash
# Installs the component toolchains for Python and JavaScript guests into
# ${WF_TOOLS_ROOT:-.tools} (relative to the workspace): a Python venv with
# componentize-py and an npm project with componentize-js. Idempotent: when
# the pinned versions are already there it only checks them. Prints nothing
# on success unless WF_TOOLS_VERBOSE is set; exits non-zero naming the
# toolchain that could not be installed, and why.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPONENTIZE_PY="0.25.*"
COMPONENTIZE_JS="0.23"

root="${WF_TOOLS_ROOT:-.tools}"
mkdir -p "$root"
root="$(cd "$root" && pwd)"
log() { if [[ -n "${WF_TOOLS_VERBOSE:-}" ]]; then echo "$@" >&2; fi; }
fail() { echo "install-guest-toolchains: $1" >&2; exit 1; }

# --- Python: componentize-py in a venv of its own -------------------------
py="$root/componentize-py"
if ! "$py/bin/componentize-py" --version 2>/dev/null | grep -q '^componentize-py 0\.25\.'; then
  command -v python3 >/dev/null ||
    fail "Python toolchain: python3 is not installed (componentize-py needs CPython >= 3.10 with venv)"
  log "installing componentize-py $COMPONENTIZE_PY into $py"
  python3 -m venv "$py" ||
    fail "Python toolchain: 'python3 -m venv $py' failed (on Debian: apt-get install python3-venv)"
  "$py/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY" >&2 ||
    fail "Python toolchain: 'pip install componentize-py==$COMPONENTIZE_PY' failed (is PyPI reachable?)"
  "$py/bin/componentize-py" --version >/dev/null ||
    fail "Python toolchain: componentize-py was installed but does not run"
fi

# --- JavaScript: componentize-js in an npm project of its own -------------
js="$root/componentize-js"
want_js() {
  node -e "const v=require('$js/node_modules/@bytecodealliance/componentize-js/package.json').version;
           process.exit(v.startsWith('$COMPONENTIZE_JS.') ? 0 : 1)" 2>/dev/null
}
if ! want_js; then
  command -v node >/dev/null && command -v npm >/dev/null ||
    fail "JavaScript toolchain: node and npm are not installed (componentize-js needs Node.js >= 18)"
  log "installing @bytecodealliance/componentize-js@$COMPONENTIZE_JS into $js"
  mkdir -p "$js"
  [[ -f "$js/package.json" ]] || echo '{"name":"wf-guest-toolchain","private":true}' >"$js/package.json"
  (cd "$js" && npm install --silent --no-audit --no-fund \
      "@bytecodealliance/componentize-js@~$COMPONENTIZE_JS.0" >&2) ||
    fail "JavaScript toolchain: 'npm install @bytecodealliance/componentize-js@~$COMPONENTIZE_JS.0' failed (is the npm registry reachable?)"
  want_js ||
    fail "JavaScript toolchain: componentize-js $COMPONENTIZE_JS was installed but cannot be loaded by node"
fi
log "guest toolchains ready in $root"
