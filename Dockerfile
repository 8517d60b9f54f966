# syntax=docker/dockerfile:1
# tokenhub-emulator as a container: `docker build -t tokenhub-emulator .` (BuildKit, Docker's default builder)
# Serves on 0.0.0.0:8000 the scenarios mounted at /scenarios; configured by TOKENHUB_EMULATOR_* variables.

# ---- build: wheels for the project and every dependency, so the final stage installs offline
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY emulator ./emulator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- run: the wheels installed, no compiler, no sources, a non-root user
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TOKENHUB_EMULATOR_HOST=0.0.0.0 \
    TOKENHUB_EMULATOR_PORT=8000 \
    TOKENHUB_EMULATOR_SCENARIO=/scenarios
# The wheels are mounted from the build stage for this one step: no layer of the image keeps a copy of them
# (a COPY of them, removed by a later RUN, would still ship in the COPY's layer).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels tokenhub-emulator \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin emulator \
    && mkdir -p /scenarios && chown emulator /scenarios
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_emulator/health' % os.environ.get('TOKENHUB_EMULATOR_PORT', '8000'), timeout=2)"
ENTRYPOINT ["tokenhub-emulator"]
CMD ["serve"]
