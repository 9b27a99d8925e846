#!/bin/bash
# The notebook image's start script (run by tini as PID 1; see docs/image.md):
#   JupyterLab on 0.0.0.0:8888 under $NB_PREFIX, no token or password (auth sits in front);
#   with ENABLE_SSH_SERVER=true also OpenSSH's sshd on port 2222, as this (non-root) user,
#   accepting the public keys in the Secrets mounted under /t9k/authorized_keys/.
# If either server exits, the others are stopped and the script exits with its status, so the
# container exits and the kubelet restarts it. Extra arguments go to `jupyter lab`.
set -euo pipefail

log() { echo "start-notebook: $*" >&2; }

NB_PREFIX="${NB_PREFIX:-/}"
[[ "$NB_PREFIX" == /* ]] || NB_PREFIX="/$NB_PREFIX"
[[ "$NB_PREFIX" == */ ]] || NB_PREFIX="$NB_PREFIX/"
export NB_PREFIX
NB_ROOT_DIR="${NB_ROOT_DIR:-/t9k/mnt}"
JUPYTER_PORT="${JUPYTER_PORT:-8888}"
SSH_PORT="${SSH_PORT:-2222}"
AUTHORIZED_KEYS_DIR="${AUTHORIZED_KEYS_DIR:-/t9k/authorized_keys}"
HOST_KEYS_DIR="${HOST_KEYS_DIR:-/t9k/host_keys}"
# the %tensorboard magic shows TensorBoard through jupyter-server-proxy
export TENSORBOARD_PROXY_URL="${TENSORBOARD_PROXY_URL:-${NB_PREFIX}proxy/%PORT%/}"

if [[ ! -w "${HOME:-/nonexistent}" ]]; then
  log "warning: HOME=${HOME:-} is not writable by uid $(id -u); Jupyter keeps its runtime files in /tmp"
  export JUPYTER_RUNTIME_DIR=/tmp/jupyter-runtime IPYTHONDIR=/tmp/ipython
fi

pids=()
names=()
stopping=0

stop_all() {
  stopping=1
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
}
trap 'log "got a stop signal, stopping ${names[*]}"; stop_all' TERM INT HUP

# ---------------------------------------------------------------- sshd (optional)

ssh_dir=""

# Every file in every Secret mounted under $AUTHORIZED_KEYS_DIR, in name order. Kubelet's layout
# (<dir>/<secret>/<key> or a projected <dir>/<file>, symlinks into ..data/) is followed; entries
# whose names start with a dot (..data, ..2024_01_01_..., .hidden) are skipped.
assemble_authorized_keys() {
  local out="$ssh_dir/authorized_keys" tmp="$ssh_dir/authorized_keys.new"
  : > "$tmp"
  if [[ -d "$AUTHORIZED_KEYS_DIR" ]]; then
    find -L "$AUTHORIZED_KEYS_DIR" -mindepth 1 -name '.*' -prune -o -type f -print0 2>/dev/null \
      | sort -z | xargs -0 -r awk 1 >> "$tmp" 2>/dev/null || true
  fi
  chmod 600 "$tmp"
  if ! cmp -s "$tmp" "$out"; then
    mv -f "$tmp" "$out"
    log "sshd: $(grep -c -v -E '^[[:space:]]*(#|$)' "$out" || true) authorized key(s) from $AUTHORIZED_KEYS_DIR"
  else
    rm -f "$tmp"
  fi
}

# SSH sessions get the container's environment (PATH with the venv, LD_LIBRARY_PATH, CUDA_*,
# KUBERNETES_*, the pod's env vars...) rather than sshd's minimal default: one SetEnv line (sshd
# uses only the first) with every variable whose value is safe to quote.
ssh_setenv() {
  local kv name value line="SetEnv"
  while IFS= read -r -d '' kv; do
    name="${kv%%=*}"
    value="${kv#*=}"
    case "$name" in
      HOME | PWD | OLDPWD | SHLVL | _ | USER | LOGNAME | SHELL | MAIL | TERM | HOSTNAME | SSH_* | \
        JUPYTER_PORT) continue ;;
    esac
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    [[ "$value" == *[\"\\$'\n']* ]] && continue
    line+=" \"$name=$value\""
  done < <(env -0)
  [[ "$line" == "SetEnv" ]] || echo "$line"
}

start_sshd() {
  local uid user key n=0
  uid="$(id -u)"
  if ! user="$(id -un 2>/dev/null)"; then
    log "error: uid $uid has no /etc/passwd entry: sshd cannot log anyone in (run as uid 1000)"
    exit 1
  fi
  ssh_dir="$(mktemp -d /tmp/sshd.XXXXXX)"
  chmod 700 "$ssh_dir"
  # Mounted host keys are root-owned and 0444: sshd refuses private keys that others can read,
  # so it gets private 0600 copies owned by this user.
  if [[ -d "$HOST_KEYS_DIR" ]]; then
    while IFS= read -r -d '' key; do
      install -m 600 "$key" "$ssh_dir/$(basename "$key")"
      n=$((n + 1))
    done < <(find -L "$HOST_KEYS_DIR" -mindepth 1 -maxdepth 1 -name '.*' -prune -o \
               -type f -name 'ssh_host_*_key' -print0)
  fi
  if [[ $n -eq 0 ]]; then
    log "sshd: no host key in $HOST_KEYS_DIR, generating an ed25519 key (its fingerprint changes on every start)"
    ssh-keygen -q -t ed25519 -N '' -C "" -f "$ssh_dir/ssh_host_ed25519_key"
  fi
  assemble_authorized_keys
  {
    echo "Port $SSH_PORT"
    for key in "$ssh_dir"/ssh_host_*_key; do echo "HostKey $key"; done
    ssh_setenv
    cat <<EOF
PidFile $ssh_dir/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
AllowUsers $user
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
StrictModes no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
EOF
  } > "$ssh_dir/sshd_config"
  /usr/sbin/sshd -t -f "$ssh_dir/sshd_config"
  log "sshd: listening on port $SSH_PORT for $user"
  /usr/sbin/sshd -D -e -f "$ssh_dir/sshd_config" &
  pids+=("$!")
  names+=(sshd)
  # Secrets that appear or change later (the kubelet updates the files) are picked up here.
  (
    trap 'exit 0' TERM
    while :; do
      sleep 10 &
      wait $!
      assemble_authorized_keys
    done
  ) &
  refresher=$!
}

refresher=""
case "${ENABLE_SSH_SERVER:-false}" in
  true | True | TRUE | 1 | yes) start_sshd ;;
esac

# ---------------------------------------------------------------- JupyterLab

cd "$NB_ROOT_DIR" 2>/dev/null || cd /
log "jupyter lab: port $JUPYTER_PORT, base URL $NB_PREFIX, root dir $NB_ROOT_DIR"
jupyter lab \
  --no-browser \
  --ServerApp.ip=0.0.0.0 \
  --ServerApp.port="$JUPYTER_PORT" \
  --ServerApp.port_retries=0 \
  --ServerApp.base_url="$NB_PREFIX" \
  --ServerApp.root_dir="$NB_ROOT_DIR" \
  --IdentityProvider.token='' \
  --ServerApp.password='' \
  --ServerApp.allow_origin='*' \
  --ServerApp.allow_remote_access=True \
  --ServerApp.trust_xheaders=True \
  --ServerApp.quit_button=False \
  "$@" &
pids+=("$!")
names+=(jupyter)

# ---------------------------------------------------------------- supervise

status=0
while :; do
  exited=""
  if wait -n -p exited "${pids[@]}"; then status=0; else status=$?; fi
  if [[ -n "${exited:-}" ]]; then
    break
  fi
  # interrupted by a signal (the trap ran): keep waiting for the servers to finish
done
for i in "${!pids[@]}"; do
  if [[ "${pids[$i]}" == "${exited:-}" ]]; then
    [[ $stopping -eq 1 ]] || log "${names[$i]} exited with status $status; stopping the container"
  fi
done
stop_all
[[ -n "$refresher" ]] && kill -TERM "$refresher" 2>/dev/null
wait || true
[[ -n "$ssh_dir" ]] && rm -rf "$ssh_dir"
exit "$status"
