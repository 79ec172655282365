#!/usr/bin/env bash
# The main job end to end on embedded defaults: set-up, then `rci demo`
# (local Kafka broker from jars, Milvus Lite, local object store, generated sample media).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/rci demo "$@"
