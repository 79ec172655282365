# The rci image: one image, two roles (`rci worker`, `rci shadow`), configured only by RCI_* variables.
# Dependencies come from requirements-runtime.lock: the project's runtime dependencies at the versions of the
# development lock (requirements.lock), without the dev extra (pytest, moto, testcontainers, linters...;
# tests/test_compose.py checks); the project is installed on top without re-resolving anything. Model weights are not baked in: mount them at RCI_MODEL_DIR (see docker-compose.yml).
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_LINK_MODE=copy \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app

# Layer 1: the pinned dependencies (large: torch and its CUDA wheels); rebuilt only when the lock changes.
COPY requirements-runtime.lock ./
# Bytecode compiled at build time: under PYTHONDONTWRITEBYTECODE every container start would otherwise
# compile torch's and transformers' sources again (about 8 s of CPU per worker start on 2 cores).
RUN --mount=type=cache,target=/root/.cache/uv uv pip sync --system --compile-bytecode requirements-runtime.lock

# Layer 2: the project itself, without touching the dependencies.
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN uv pip install --system --no-deps --no-cache --compile-bytecode .

RUN useradd --uid 10001 --create-home rci && mkdir -p /data /models && chown rci /data
USER rci
ENV RCI_DATA_DIR=/data \
    RCI_MODEL_DIR=/models
VOLUME ["/data"]

ENTRYPOINT ["rci"]
CMD ["worker"]
