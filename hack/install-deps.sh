#!/usr/bin/env bash
# The Debian packages the local cluster, its real node, the image builds and the tests need.
# Installs what is missing (as root, with apt-get); otherwise names it in one line and fails.
#   hack/install-deps.sh            # everything `make test` needs
set -euo pipefail

# command -> package
declare -A pkgs=(
  [openssl]=openssl [sshd]=openssh-server [ssh]=openssh-client [ss]=iproute2 [ip]=iproute2
  [make]=make [git]=git [runc]=runc [iptables]=iptables [conntrack]=conntrack
  [docker-registry]=docker-registry [buildah]=buildah [busybox]=busybox-static
  [debootstrap]=debootstrap [chromium]=chromium [tini]=tini
)
need=()
for cmd in "${!pkgs[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/sbin/$cmd" ]; then
    need+=("${pkgs[$cmd]}")
  fi
done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
[ "${#need[@]}" -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages: ${need[*]}: run \`sudo apt-get install ${need[*]}\`" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
