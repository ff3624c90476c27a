#!/usr/bin/env bash
# Installs the servers the tests run for real (PostgreSQL, Prometheus Alertmanager) and the browser
# the web pages are tested in (Debian's chromium, which Playwright drives) when they are
# missing and this is root with apt-get; run by test.sh. Otherwise their tests skip and the run
# ends with a line counting them, except under CI (CI set), where a missing server is an error.
set -euo pipefail

missing() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo postgresql
  command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
    || echo prometheus-alertmanager
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || echo chromium
}

can_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
}

apt_install() {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

mapfile -t need < <(missing)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
if ! can_install; then
  why="installing needs root and apt-get"
elif apt_install "${need[@]}"; then
  exit 0
else
  why="apt-get failed"
fi
if [ -n "${CI:-}" ]; then
  echo "error: CI needs ${need[*]} installed (apt-get install ${need[*]}): $why" >&2
  exit 1
fi
echo "note: ${need[*]} not installed ($why); their tests will skip" >&2
