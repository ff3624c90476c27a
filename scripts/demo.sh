#!/usr/bin/env bash
# Quick start, command 1: set up and replay the console demo (a full incident across a
# follow-the-sun handoff) against the local Slack stand-in. Extra arguments go to `console`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m bot console --script examples/follow-the-sun-incident.txt "$@"
