#!/usr/bin/env bash
# tests/fuzz-api.sh BINARY: fuzz nsdb's JSON API (/api/v1) from its own OpenAPI document with
# schemathesis, on a throw-away `BINARY demo` (hub, hospital, municipality on loopback).
#
#   node          user       base URL
#   hub           ministry   http://127.0.0.1:BASE/
#   hospital      doctor     http://127.0.0.1:BASE+1/
#   municipality  reviewer   http://127.0.0.1:BASE+2/
#   (the demo's hub also listens for sync on BASE+3)
#
# Checks: not_a_server_error (5xx), response_schema_conformance, status_code_conformance,
# content_type_conformance. Exit status: 0 when every check passed on every node, 1 when any
# check failed (or schemathesis reported an error), 2 when the run could not be set up.
# The demo is always stopped and its data directory removed (trap).
#
# Environment (all optional):
#   FUZZ_SEED=1              hypothesis seed (fixed: runs are repeatable)
#   FUZZ_MAX_EXAMPLES=100    test cases per operation and phase
#   FUZZ_NODE_TIMEOUT=170    hard limit in seconds for one node's schemathesis run
#   FUZZ_OUT=DIR             where the per-node logs and JUnit/NDJSON reports go
#                            (default: a new directory under ${TMPDIR:-/tmp}, kept and printed)
#   FUZZ_TOOLS=DIR           where schemathesis is installed when missing
#                            (default: ${XDG_CACHE_HOME:-$HOME/.cache}/nsdb-fuzz)
#   FUZZ_NO_VENV=1           install with `pip --target` instead of a venv (Debian without
#                            python3-venv does this by itself)
set -euo pipefail

ST_VERSION=4.32.5
SEED=${FUZZ_SEED:-1}
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-100}
NODE_TIMEOUT=${FUZZ_NODE_TIMEOUT:-170}
CHECKS=not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance

# Operations left out, and why (everything else in the document is fuzzed):
#  - DELETE /api/v1/session (logout): it revokes the bearer token the run fuzzes with, so every
#    later request of that node's run would get 401 and test nothing.
# Kept on purpose: POST /api/v1/session (random sign-ins hit no real account) and
# POST /api/v1/session/reauth (wrong passwords lock the account for new sign-ins, but the
# token already held keeps working, and each run signs in before fuzzing on fresh data).
EXCLUDE=(--exclude-operation-id logout)

log() { printf 'fuzz-api: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

[ $# -eq 1 ] || die "usage: $0 BINARY"
BIN=$1
[ -x "$BIN" ] || die "$BIN is not an executable file"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
command -v python3 >/dev/null || die "python3 is needed"

START=$(date +%s)

# --- schemathesis, pinned ----------------------------------------------------------------
TOOLS=${FUZZ_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/nsdb-fuzz}
mkdir -p "$TOOLS" && TOOLS=$(cd "$TOOLS" && pwd) || die "cannot create $TOOLS"
ST=()
st_ok() { "$@" --version 2>/dev/null | grep -q ", version ${ST_VERSION//./\\.}\$"; }
if command -v schemathesis >/dev/null && st_ok schemathesis; then
    ST=(schemathesis)
elif [ -x "$TOOLS/venv/bin/schemathesis" ] && st_ok "$TOOLS/venv/bin/schemathesis"; then
    ST=("$TOOLS/venv/bin/schemathesis")
elif [ -d "$TOOLS/site" ] && st_ok env PYTHONPATH="$TOOLS/site" python3 -m schemathesis.cli; then
    ST=(env PYTHONPATH="$TOOLS/site" python3 -m schemathesis.cli)
else
    mkdir -p "$TOOLS"
    log "installing schemathesis==$ST_VERSION under $TOOLS"
    if [ -z "${FUZZ_NO_VENV:-}" ] && python3 -m venv "$TOOLS/venv" >/dev/null 2>&1 \
        && "$TOOLS/venv/bin/python" -m pip --version >/dev/null 2>&1; then
        "$TOOLS/venv/bin/python" -m pip install -q --disable-pip-version-check \
            "schemathesis==$ST_VERSION" >&2 || die "pip install schemathesis==$ST_VERSION failed"
        ST=("$TOOLS/venv/bin/schemathesis")
    else
        # No usable venv (Debian without python3-venv): a --target directory needs neither
        # root nor --break-system-packages.
        rm -rf "$TOOLS/venv" "$TOOLS/site"
        python3 -m pip install -q --disable-pip-version-check --target "$TOOLS/site" \
            "schemathesis==$ST_VERSION" >&2 || die "pip install schemathesis==$ST_VERSION failed"
        ST=(env PYTHONPATH="$TOOLS/site" python3 -m schemathesis.cli)
    fi
    st_ok "${ST[@]}" || die "schemathesis $ST_VERSION did not install"
fi
log "using schemathesis $ST_VERSION (${ST[*]})"

# --- a free port base (four consecutive ports: hub, hospital, municipality, hub sync) -----
PORT_BASE=$(python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
rng = random.Random()
for _ in range(200):
    b = rng.randrange(20000, 60000)
    if all(free(b + i) for i in range(4)):
        print(b); break
else:
    raise SystemExit("no free port base found")
EOF
) || die "no free port base"

# --- the demo --------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nsdb-fuzz.XXXXXX")
OUT=${FUZZ_OUT:-$WORK-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DEMO_PID=
ST_PID=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$ST_PID" ] && kill -0 "$ST_PID" 2>/dev/null; then
        kill -TERM "$ST_PID" 2>/dev/null || true   # `timeout` passes it on to schemathesis
        wait "$ST_PID" 2>/dev/null || true
    fi
    if [ -n "$DEMO_PID" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
        kill -INT "$DEMO_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$DEMO_PID" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$DEMO_PID" 2>/dev/null; then
            log "demo did not stop on SIGINT; killing it"
            kill -KILL "$DEMO_PID" 2>/dev/null || true
        fi
        wait "$DEMO_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting $BIN demo --port-base $PORT_BASE (log: $OUT/demo.log)"
"$BIN" demo --port-base "$PORT_BASE" --data "$WORK/data" </dev/null >"$OUT/demo.log" 2>&1 &
DEMO_PID=$!

NODES=(hub hospital municipality)
USERS=(ministry doctor reviewer)
url() { echo "http://127.0.0.1:$((PORT_BASE + $1))"; }
# Plain python3 for HTTP (no curl needed on a fresh machine).
healthy() {
    python3 -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=5).status == 200 else 1)
except Exception:
    sys.exit(1)' "$1/api/v1/health"
}
sign_in() {   # URL LOGIN -> prints the bearer token
    python3 -c 'import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/api/v1/session", method="POST",
    data=json.dumps({"login": sys.argv[2], "password": "demo"}).encode(),
    headers={"Content-Type": "application/json"})
try:
    body = urllib.request.urlopen(req, timeout=10).read()
except urllib.error.HTTPError as e:
    sys.exit(f"HTTP {e.code}: {e.read()[:300]!r}")
except Exception as e:
    sys.exit(str(e))
print(json.loads(body)["token"])' "$1" "$2"
}

deadline=$(( $(date +%s) + 120 ))
for i in 0 1 2; do
    until healthy "$(url $i)"; do
        kill -0 "$DEMO_PID" 2>/dev/null || { tail -20 "$OUT/demo.log" >&2; die "the demo exited"; }
        [ "$(date +%s)" -lt "$deadline" ] || { tail -20 "$OUT/demo.log" >&2; die "${NODES[$i]} did not answer /api/v1/health within 120 s"; }
        sleep 0.5
    done
done
log "all three nodes answer /api/v1/health"

# --- sign in (before any fuzzing) ------------------------------------------------------
TOKENS=()
for i in 0 1 2; do
    tok=$(sign_in "$(url $i)" "${USERS[$i]}") || die "sign-in of ${USERS[$i]} on ${NODES[$i]} failed"
    TOKENS+=("$tok")
done
log "signed in: ministry@hub, doctor@hospital, reviewer@municipality"

# --- fuzz ------------------------------------------------------------------------------
export NO_COLOR=1
failed=0
SUMMARY=()
for i in 1 2 0; do   # hospital, municipality, hub
    node=${NODES[$i]} base=$(url $i)
    log "fuzzing $node as ${USERS[$i]} ($base)"
    t0=$(date +%s)
    rc=0
    # In the background with `wait`, so that Ctrl-C / SIGTERM run the trap at once; in $WORK,
    # so that hypothesis' and schemathesis' own caches (.hypothesis/, .schemathesis/) neither
    # litter the caller's directory nor carry over between runs.
    (cd "$WORK" && exec timeout --kill-after=10 "$NODE_TIMEOUT" "${ST[@]}" run "$base/api/v1/openapi.json" \
        --url "$base" \
        -H "Authorization: Bearer ${TOKENS[$i]}" \
        --checks "$CHECKS" \
        "${EXCLUDE[@]}" \
        --seed "$SEED" --max-examples "$MAX_EXAMPLES" \
        --workers 1 \
        --generation-database none \
        --continue-on-failure \
        --request-timeout 15 \
        --no-color \
        --report junit,ndjson \
        --report-junit-path "$OUT/$node.junit.xml" \
        --report-ndjson-path "$OUT/$node.ndjson") \
        >"$OUT/$node.log" 2>&1 &
    ST_PID=$!
    wait "$ST_PID" || rc=$?
    ST_PID=
    t1=$(date +%s)
    last=$(grep -E '^=+ .* in [0-9.]+s =+$' "$OUT/$node.log" | tail -1 | sed -E 's/^=+ (.*) =+$/\1/')
    # A failure shows what failed (each with a curl command that reproduces it) in CI's log.
    [ "$rc" -eq 0 ] || grep -A 12 -E '^(_+ |- |[0-9]+\. )' "$OUT/$node.log" | head -n 200 >&2 || true
    case $rc in
        0) res=passed ;;
        124|137) res="TIMED OUT after ${NODE_TIMEOUT}s"; failed=1 ;;
        *) res="FAILED (exit $rc)"; failed=1 ;;
    esac
    SUMMARY+=("$(printf '%-13s %-9s %-22s %s [%ss]' "$node" "${USERS[$i]}" "$res" "${last:-no summary}" $((t1 - t0)))")
    kill -0 "$DEMO_PID" 2>/dev/null || { log "the demo died during the run"; failed=1; break; }
done

log "results (logs and reports in $OUT):"
for line in "${SUMMARY[@]}"; do log "  $line"; done
log "total $(( $(date +%s) - START ))s"
exit "$failed"
