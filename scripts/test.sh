#!/usr/bin/env bash
# The whole test suite: the Rust tests (unit and integration), then the boto3 conformance suites against
# the real binary. Makes .venv with the pinned Python packages on first run.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --locked

want=$(grep -E '^[a-z0-9_.-]+==' tests/python/requirements.txt | sort)
have=$( [ -x .venv/bin/pip ] && .venv/bin/pip freeze 2>/dev/null | sort || true)
if [ -n "$(comm -23 <(echo "$want") <(echo "$have"))" ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet -r tests/python/requirements.txt
fi

cargo build --locked --bin edgesplit
EDGESPLIT_BIN="$PWD/target/debug/edgesplit" .venv/bin/pytest -q tests/python
