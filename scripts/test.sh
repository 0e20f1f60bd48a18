#!/usr/bin/env bash
# The one test command: ./scripts/test.sh [pytest arguments...]
# Brings this machine up to date (./setup.sh --dev, about a second when nothing changed), lints, runs pytest.
# Fails on any lint error, any test failure, and when pytest collects no tests at all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Heavy test peers (a Home Assistant venv, models, ...) are cached outside the checkout, keyed by version.
export PIBUDDY_TEST_CACHE="${PIBUDDY_TEST_CACHE:-${HOME:?set HOME or PIBUDDY_TEST_CACHE}/.cache/pibuddy-tests}"
mkdir -p "$PIBUDDY_TEST_CACHE"

# setup.sh builds the C packet fast path here, so its tests fail rather than skip when it is missing.
export PIBUDDY_REQUIRE_NATIVE=1

# PulseAudio as root (CI): no flag or variable is needed. A test-owned `pulseaudio --daemonize=no
# --system=false -n ...` run by root only logs "not intended to be run as root" plus cookie and D-Bus
# warnings, all harmless. What the tests must do is point HOME, XDG_RUNTIME_DIR (mode 700),
# PULSE_RUNTIME_PATH and PULSE_STATE_PATH at a temp dir, load module-native-protocol-unix with
# auth-anonymous=1 and an explicit socket=, give clients PULSE_SERVER=unix:<that socket>, and keep the
# daemon a child of the test process (stop it in teardown) so it is reaped.
./setup.sh --dev

lint_paths=()
for path in pibuddy tests bench scripts; do
    [[ -e $path ]] && lint_paths+=("$path")
done
echo "==> ruff check ${lint_paths[*]}"
.venv/bin/ruff check "${lint_paths[@]}"
echo "==> mypy (strict on the core: see [tool.mypy] in pyproject.toml)"
.venv/bin/mypy
echo "==> lint-imports (imports only point down: see [tool.importlinter] in pyproject.toml)"
.venv/bin/lint-imports --no-cache

# The heavy test peers (Home Assistant's venv, Node + OpenClaw) are built here, once per version, outside
# the per-test timeout: on a fresh machine building them takes minutes.
echo "==> test peers (cached in $PIBUDDY_TEST_CACHE)"
.venv/bin/python -m tests.peers.prepare

# 120 s per test unless the arguments say otherwise (--timeout=N wins over the ini value).
echo "==> pytest $*"
status=0
.venv/bin/python -m pytest -o timeout=120 "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
fi

# The tests where packets flow (device client, gateway) once more over the pure-Python packet twin,
# so the fallback a machine without a compiler runs is exercised end to end, not only byte for byte.
if [[ $status -eq 0 && $# -eq 0 ]]; then
    echo "==> pytest with PIBUDDY_NATIVE=0 (the pure-Python packet path): device client and gateway"
    PIBUDDY_NATIVE=0 .venv/bin/python -m pytest -o timeout=120 -q \
        tests/test_xiaozhi_udp_packet_native.py::test_this_test_run_uses_the_packet_path_its_environment_asks_for \
        tests/test_device_client_client.py tests/gateway || status=$?
fi
exit "$status"
