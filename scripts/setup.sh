#!/usr/bin/env bash
# Creates .venv and installs the project into it, as on a fresh machine. Idempotent: re-running is quick.
#   bash scripts/setup.sh          runtime only
#   bash scripts/setup.sh --dev    plus the test tools and a headless browser (Debian chromium) for UI tests,
#                                  dagster-celery and Debian's redis-server for the Celery executor tests
#   bash scripts/setup.sh --celery runtime plus the Celery executor and S3 storage (a Celery worker machine)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), sys.version' \
  || { echo "setup.sh: needs Python 3.11 (or 3.12); set PYTHON=/path/to/python3.11" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build. 2.13.0 is the CPU wheel here.
"${PIP[@]}" install "torch==2.13.0"
if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" install -e ".[dev]"
  # The UI tests drive a real browser: Debian's chromium through Playwright (no browser download needed).
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "setup.sh: chromium not found; the browser tests will be skipped, or fail under CI (install Debian's chromium)" >&2
    fi
  fi
elif [ "${1:-}" = "--celery" ]; then
  "${PIP[@]}" install -e ".[celery,s3]"
else
  "${PIP[@]}" install -e .
fi
if [ "${1:-}" = "--dev" ] || [ "${1:-}" = "--celery" ]; then
  # dagster-celery 0.29.27 (the newest published) pins dagster==1.13.27; its code runs on 1.13.28, which this project
  # pins, so it goes in without its dependencies (celery itself comes from the extra above).
  "${PIP[@]}" install --no-deps "dagster-celery==0.29.27"
fi
if [ "${1:-}" = "--dev" ] && ! command -v redis-server >/dev/null 2>&1; then
  # The Celery tests start a throwaway Redis (the broker) on a loopback port.
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "setup.sh: redis-server not found; the Celery tests will be skipped (install Debian's redis-server)" >&2
  fi
fi
# implicit's wheel needs the system OpenMP runtime.
.venv/bin/python -c "import implicit" 2>/dev/null || {
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgomp1 >/dev/null
  fi
}
echo "setup.sh: ready (.venv)"
