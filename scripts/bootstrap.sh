#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine, idempotently:
#   - Debian packages (kcat, ffmpeg, espeak-ng, promtool, corpus photo packages) when missing,
#   - a Python virtual environment in ./.venv pinned to requirements.lock,
#   - the Apache Kafka jars (resolved by Maven into a cache outside the checkout),
#   - the Milvus standalone server binary from the `milvus` wheel, unpacked into the same cache.
# Heavy downloads live in $RCI_CACHE_DIR (default ~/.cache/rci) so a fresh clone reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${RCI_CACHE_DIR:-$HOME/.cache/rci}"
mkdir -p "$CACHE"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$CACHE/uv}"
export UV_LINK_MODE="${UV_LINK_MODE:-hardlink}"

need_apt=()
command -v kcat >/dev/null || need_apt+=(kcat)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
# Chromaprint: the audio fingerprint library (pyacoustid loads it) and fpcalc.
ldconfig -p 2>/dev/null | grep -q libchromaprint.so.1 || need_apt+=(libchromaprint1)
command -v fpcalc >/dev/null || need_apt+=(libchromaprint-tools)
# promtool (Debian's prometheus package): tests/ops checks the alert rules with it.
command -v promtool >/dev/null || need_apt+=(prometheus)
# Headless Chromium and its WebDriver: the review page's browser test (tests/review/test_review_browser.py).
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if ((${#need_apt[@]})); then
  echo "[bootstrap] apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Only promtool is wanted from Debian's prometheus package: don't leave its server running on :9090.
  if [[ " ${need_apt[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# Photos for the training/demo corpus (never the packages reserved for held-out evaluation).
bash src/rci/training/corpus/install_photos.sh

command -v uv >/dev/null || [ -x "$HOME/.local/bin/uv" ] || python3 -m pip install -q --user uv
UV="$(command -v uv || echo "$HOME/.local/bin/uv")"
PYTHON="$(bash scripts/find_python.sh)"
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
  echo "[bootstrap] .venv is not Python 3.12: recreating it"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$UV" venv -q --python "$PYTHON" .venv
fi
stamp=".venv/.lock-$(sha256sum requirements.lock | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[bootstrap] installing pinned Python dependencies (cache: $UV_CACHE_DIR)"
  "$UV" pip sync -q --python .venv/bin/python requirements.lock
  rm -f .venv/.lock-*; touch "$stamp"
fi
"$UV" pip install -q --python .venv/bin/python --no-deps -e .
# Bytecode written once: where PYTHONDONTWRITEBYTECODE is set (many CI images set it) every Python process
# would compile torch's, transformers' and scikit-learn's sources again, ~8 s of CPU per worker started.
bytecode=".venv/.bytecode-$(sha256sum requirements.lock | cut -c1-16)"
if [ ! -f "$bytecode" ]; then
  echo "[bootstrap] compiling the dependencies' bytecode (once per lock, about a minute)"
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3.12/site-packages >/dev/null 2>&1 || true
  rm -f .venv/.bytecode-*; touch "$bytecode"
fi
.venv/bin/python -m compileall -q src benchmarks >/dev/null 2>&1 || true

.venv/bin/python -m rci.services.kafka_jars
# The Milvus standalone server (the `milvus` wheel, pinned in the lock): its binary unpacked once into the cache.
.venv/bin/python -c 'from rci.services.milvus_server import standalone_problem as p; print("[bootstrap] Milvus standalone server:", p() or "ready")'
echo "[bootstrap] ready: source .venv/bin/activate"
