#!/usr/bin/env bash
# Container images built without Docker (buildah + Debian packages), pushed to the local registry.
#   hack/images.sh build [--no-push] [NAME...]   (default: all images)
#   hack/images.sh list                          (the references pods use)
# The work is done by hack/images.py (Python standard library only).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v python3 >/dev/null 2>&1; then
  echo "images: error: python3 not found on PATH" >&2
  exit 1
fi
exec python3 "$here/images.py" "$@"
