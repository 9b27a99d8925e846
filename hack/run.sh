#!/usr/bin/env bash
# `make run`: run the controller on this machine.
# - Against the cluster of $KUBECONFIG (or ~/.kube/config) when that cluster answers.
# - Otherwise against the local simulated cluster, which it starts (hack/cluster.sh up).
# The Notebook CRD is applied first (server-side: it is too large for client-side apply).
set -euo pipefail
cd "$(dirname "$0")/.."

kubeconfig=${KUBECONFIG:-}
if [ -z "$kubeconfig" ] && [ -f "$HOME/.kube/config" ]; then
  kubeconfig=$HOME/.kube/config
fi

kubectl_bin() {
  if command -v kubectl >/dev/null 2>&1; then
    command -v kubectl
  else
    echo "$(hack/cluster.sh bin-dir)/kubectl"
  fi
}

if [ -n "$kubeconfig" ] && [ -x "$(kubectl_bin 2>/dev/null)" ] \
   && "$(kubectl_bin)" --kubeconfig "$kubeconfig" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
  echo "run: using the cluster of $kubeconfig" >&2
else
  if [ -n "$kubeconfig" ]; then
    echo "run: the cluster of $kubeconfig does not answer; starting the local simulated cluster" >&2
  else
    echo "run: no kubeconfig; starting the local simulated cluster" >&2
  fi
  hack/install-deps.sh
  hack/cluster.sh up
  kubeconfig=$PWD/.cluster/kubeconfig
fi

kubectl=$(kubectl_bin)
"$kubectl" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts \
  --field-manager=notebook-controller-install -f deploy/crd/
"$kubectl" --kubeconfig "$kubeconfig" wait --for=condition=Established --timeout=60s \
  crd/notebooks.tensorstack.dev

# The console and notebook gateway (docs/console.md) beside the controller, as the kubeconfig's
# user; status.url points at its gateway. NBCTL_CONSOLE=0 skips it; CONSOLE_ADDRESS moves it.
console_args=()
if [ "${NBCTL_CONSOLE:-1}" != 0 ]; then
  console_address=${CONSOLE_ADDRESS:-127.0.0.1:8090}
  .venv/bin/python -m notebook_controller.console --kubeconfig "$kubeconfig" \
    --address "$console_address" &
  console_pid=$!
  trap 'kill "$console_pid" 2>/dev/null || true' EXIT
  console_args=(--external-url-base "http://$console_address")
  echo "run: the notebook console and gateway: http://$console_address/" >&2
fi

.venv/bin/python -m notebook_controller run --kubeconfig "$kubeconfig" "${console_args[@]}" "$@"
