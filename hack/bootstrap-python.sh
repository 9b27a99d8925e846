#!/usr/bin/env bash
# Creates the project's virtualenv and installs the package with its dev extras.
set -euo pipefail
venv=${1:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[dev]'
touch "$venv/.installed"
