#!/usr/bin/env bash
# The whole test suite: the Rust tests (unit and integration), then the boto3 conformance suites against
# the real binary with the pinned boto3 1.42.50 (on redb, then on PostgreSQL), then the demo's and the README's client lines with the
# newest boto3 and AWS CLI (which need `edgesplit install-models`). Makes .venv and .venv-latest with
# the pinned Python packages on first run (and again when a pin changes).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --locked --workspace # edgesplit and crates/alloc-ctl (its allocator test)

# venv DIR REQUIREMENTS: DIR holds every pinned package of REQUIREMENTS, or is made (again) so it does.
venv() {
  local dir=$1 requirements=$2 want have
  want=$(grep -E '^[a-z0-9_.-]+==' "$requirements" | sort)
  have=$( [ -x "$dir/bin/pip" ] && "$dir/bin/pip" freeze 2>/dev/null | sort || true)
  if [ -n "$(comm -23 <(echo "$want") <(echo "$have"))" ]; then
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet -r "$requirements"
  fi
}
venv .venv tests/python/requirements.txt
venv .venv-latest tests/python/requirements-latest.txt

cargo build --locked --bin edgesplit
export EDGESPLIT_BIN="$PWD/target/debug/edgesplit"
.venv/bin/pytest -q tests/python
# The same suites against the fleet store: each test's state in a schema of a throwaway PostgreSQL cluster.
EDGESPLIT_TEST_STORE=postgres .venv/bin/pytest -q tests/python
.venv-latest/bin/pytest -q tests/python/test_demo_lines.py
