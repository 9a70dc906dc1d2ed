#!/usr/bin/env bash
# Stops with a clear message when Python 3.11, Java 17 or Node.js is missing (make setup,
# test, demo); with --deploy <python>, when Python 3.11 or Node.js is missing (make deploy needs
# no Java: it runs no Spark); with --browser <venv python>, when no headless Chromium can run
# the browser tests.
set -euo pipefail

if [ "${1:-}" = "--browser" ]; then
  venv_python="${2:-.venv/bin/python}"
  how="Chromium comes with 'npm ci' (the pinned npm package @sparticuz/chromium, unpacked into build/chromium/). If that does not run on this system, install Debian's: apt-get install chromium (then rm -rf build/chromium), or set DUFFBEER_CHROMIUM=/path/to/chromium."
  if ! chromium_bin=$("$venv_python" -m duffbeer_local.browser); then
    echo "error: no headless Chromium for the browser tests. $how" >&2
    exit 1
  fi
  if ! "$chromium_bin" --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1; then
    echo "error: $chromium_bin does not start (missing system libraries?). $how" >&2
    exit 1
  fi
  exit 0
fi

deploy_only=0
if [ "${1:-}" = "--deploy" ]; then
  deploy_only=1
  shift
fi
python_bin="${1:-python3.11}"

if ! command -v "$python_bin" >/dev/null 2>&1; then
  echo "error: $python_bin not found. Install Python 3.11 (the AWS Glue 5.0 / Lambda runtime) or run 'make PYTHON=/path/to/python3.11 ...'." >&2
  exit 1
fi
py_version=$("$python_bin" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$py_version" != "3.11" ]; then
  echo "error: $python_bin is Python $py_version; this project needs Python 3.11 (parity with AWS Glue 5.0 and Lambda python3.11)." >&2
  exit 1
fi

node_help="Install Node.js 20+ (e.g. apt-get install nodejs npm, or brew install node)."
if [ "$deploy_only" = 1 ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "error: Node.js/npm not found. The deploy packages the reports page's chart library (npm ci, vendored into the API package). $node_help" >&2
    exit 1
  fi
  exit 0
fi

java_bin="java"
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then java_bin="$JAVA_HOME/bin/java"; fi
if ! command -v "$java_bin" >/dev/null 2>&1; then
  echo "error: Java not found. Install a Java 17 runtime (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME; Spark needs it." >&2
  exit 1
fi
java_major=$("$java_bin" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}')
if [ "$java_major" != "17" ]; then
  echo "error: $java_bin is Java ${java_major:-unknown}; this project needs Java 17 (parity with AWS Glue 5.0). Set JAVA_HOME to a Java 17 install." >&2
  exit 1
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: Node.js/npm not found. npm ci brings the ASL linter, the reports page's chart library (vendored into the API package) and the headless Chromium of the browser tests. $node_help" >&2
  exit 1
fi
