#!/usr/bin/env bash
# Local Kubernetes control plane for tests and development (see README, "Local cluster").
#   hack/cluster.sh build|up|down|status|env|bin-dir
#   hack/cluster.sh stop-component|start-component etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok
# The work is done by hack/cluster.py and the modules beside it (clusterbuild, pki, processes,
# components, node, nodebuild; Python standard library only).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v python3 >/dev/null 2>&1; then
  echo "cluster: error: python3 not found on PATH" >&2
  exit 1
fi
exec python3 "$here/cluster.py" "$@"
