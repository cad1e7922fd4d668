#!/usr/bin/env bash
# Idempotent installer of the browser the end-to-end UI test drives: Debian's chromium and chromium-driver
# from apt when missing (root, or sudo without a password; FP_NO_APT set forbids apt). Playwright's own
# browser download needs the web, so the test points Playwright at /usr/bin/chromium instead.
# Prints the browser's path on stdout; exits non-zero with the fix when it cannot provide one.
set -euo pipefail

say() { printf '[browser] %s\n' "$*" >&2; }
die() { printf '[browser] error: %s\n' "$*" >&2; exit 1; }

find_chromium() { command -v chromium || command -v chromium-browser || true; }

chromium="$(find_chromium)"
if [ -z "$chromium" ] || ! command -v chromedriver >/dev/null; then
  [ -z "${FP_NO_APT:-}" ] && command -v apt-get >/dev/null \
    || die "chromium not found and apt is not allowed here: apt-get install chromium chromium-driver"
  if [ "$(id -u)" = 0 ]; then sudo=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n)
  else die "chromium not found and no root: sudo apt-get install chromium chromium-driver"; fi
  say "installing chromium and chromium-driver from apt"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
  chromium="$(find_chromium)"
  [ -n "$chromium" ] || die "chromium still not found after apt install"
fi
say "$("$chromium" --version 2>/dev/null || echo "$chromium")"
echo "$chromium"
