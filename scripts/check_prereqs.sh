#!/usr/bin/env bash
# Stops with a clear message when Python 3.11 or Java 17 is missing.
set -euo pipefail
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
