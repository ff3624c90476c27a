#!/usr/bin/env bash
# Quick start, command 2: set up and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
bash scripts/install_servers.sh
exec .venv/bin/python -m pytest "$@"
