#!/usr/bin/env bash
# What benchmarks/versus_feast.py needs besides the project: wrk (the HTTP load generator, from apt) and Feast
# in its own virtual environment (FP_FEAST_VENV, default .data/feast/venv) from the pinned requirements next to
# this script. Idempotent: a venv whose stamp matches the requirements is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '[bench-feast setup] %s\n' "$*"; }

if ! command -v wrk >/dev/null; then
  if [ -z "${FP_NO_APT:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing wrk"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
  else
    printf '[bench-feast setup] error: wrk not found: apt-get install wrk\n' >&2; exit 1
  fi
fi

venv="${FP_FEAST_VENV:-.data/feast/venv}"
requirements=benchmarks/feast/requirements.txt
want="$(sha256sum "$requirements" | cut -c1-16)"
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
  say "installing Feast into $venv (a few minutes, once)"
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$venv/.installed"
fi
say "ready: $("$venv/bin/python" -c 'import feast; print("Feast", feast.__version__)') in $venv, $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
