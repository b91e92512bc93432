# syntax=docker/dockerfile:1
# Company Chat: CPU-only image. Build: docker build -t company-chat .
# Run (production needs your IdP and secrets; see docs/operations.md):
#   docker run -p 7860:7860 -v chat-data:/app/data --env-file chat.env company-chat
FROM python:3.11-slim

# glibc's malloc keeps its default mmap threshold: a fixed MALLOC_MMAP_THRESHOLD_=1048576 saves
# ~50 MB of peak RSS but makes every prompt's activations fresh page-faulted mappings, +50% time
# to first token (bench/engine_bench.py, docs/performance.md).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_IMPLICIT_TOKEN=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    CHAT_ENVIRONMENT=production \
    CHAT_SERVER__HOST=0.0.0.0

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
WORKDIR /app

# Dependency layer first, so code changes do not reinstall packages.
# The CPU-only torch wheel comes from PyTorch's CPU index; the default PyPI wheel would pull CUDA (several GB).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements.txt constraints.txt ./
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0 \
 && pip install -r requirements.txt -c constraints.txt

# Application code only: no tests, benchmarks or dev tools in the image.
COPY --chown=root:root launch.py config.py app_factory.py settings.toml ./
COPY --chown=root:root core/ core/
COPY --chown=root:root guards/ guards/
COPY --chown=root:root auth/ auth/
COPY --chown=root:root model/ model/
COPY --chown=root:root store/ store/
COPY --chown=root:root webui/ webui/

# The model cache and the SQLite database live here; mount a volume to keep them.
RUN mkdir -p /app/data && chown app:app /app/data
VOLUME ["/app/data"]

USER app
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=4)"]

# exec form: SIGTERM reaches uvicorn, which stops generations and exits cleanly.
CMD ["python", "launch.py"]
