#!/usr/bin/env bash
# The full test run (`make test`, CI): venv, local cluster (built on first use), pytest.
# Extra arguments go to pytest, e.g. `hack/test.sh tests/cluster -k gpu`.
# A cluster already reachable through $KUBECONFIG is reused; otherwise the local one is
# started and, if this script started it, stopped again at the end (set KEEP_CLUSTER=1 to keep it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

hack/install-deps.sh  # Debian packages (root: installed; otherwise one line naming them)

venv=${VENV:-.venv}
if [ ! -x "$venv/bin/python" ] || [ ! -e "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
  hack/bootstrap-python.sh "$venv"
fi

started=0
reachable() {
  local kubectl
  kubectl="$(hack/cluster.sh bin-dir)/kubectl"
  [ -x "$kubectl" ] || kubectl=$(command -v kubectl || true)
  [ -n "$kubectl" ] && timeout 20 "$kubectl" --kubeconfig="$1" get --raw=/readyz >/dev/null 2>&1
}
if [ -n "${KUBECONFIG:-}" ] && [ -f "${KUBECONFIG%%:*}" ] && reachable "${KUBECONFIG%%:*}"; then
  echo "test: using the cluster from KUBECONFIG=$KUBECONFIG" >&2
else
  # `up` prints "started" or "reused" on stdout: stop at the end only a cluster we started
  if [ "$(hack/cluster.sh up)" = started ]; then
    started=1
    export NBCTL_TEST_OWNS_CLUSTER=1  # tests/node/test_teardown.py may take it down
  fi
  export KUBECONFIG="$PWD/.cluster/kubeconfig"
fi

cleanup() {
  if [ "$started" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    hack/cluster.sh down || true
  fi
}
trap cleanup EXIT

"$venv/bin/python" -m pytest -q -ra "$@"  # no path: pyproject's testpaths (tests/)
