# The platform image: Ray head, Ray GPU workers and the sweep launcher (compose and KubeRay).
#   docker build -f infra/docker/platform.Dockerfile -t dmlsweep-platform .
#
# Base: Ray's own GPU image for the pinned Ray and Python (CUDA runtime, the `ray` user and the
# layout KubeRay expects). torch comes from PyPI as pinned in pyproject.toml; its Linux wheel
# is the CUDA build and carries its CUDA libraries, so only the host's NVIDIA driver is needed.
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311-gpu
FROM ${BASE_IMAGE}

# The base image runs as its `ray` user; give it the project directory.
USER root
RUN mkdir -p /opt/dmlsweep && chown ray:users /opt/dmlsweep
USER ray
WORKDIR /opt/dmlsweep

# Dependencies first (a layer that changes only with pyproject.toml): install the project from
# empty package directories, then the real sources without touching the dependencies.
# Beyond pyproject: psycopg2-binary (PostgreSQL for Optuna and MLflow URLs) and grpcio (Ray
# Client, the ray:// address the compose launcher uses; it is what ray[client] adds).
COPY --chown=ray:users pyproject.toml README.md ./
RUN mkdir -p platform/dmlsweep trainables \
    && touch platform/dmlsweep/__init__.py trainables/__init__.py \
    && pip install --no-cache-dir . psycopg2-binary grpcio \
    && rm -rf platform trainables build *.egg-info

# The package itself, INSTALLED (not mounted, not editable): every Ray worker imports the same
# dmlsweep and trainables from site-packages, whatever its working directory.
COPY --chown=ray:users platform ./platform
COPY --chown=ray:users trainables ./trainables
COPY --chown=ray:users sweeps ./sweeps
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build *.egg-info \
    && python -c "import dmlsweep, trainables.registry, torch, ray; print('dmlsweep', dmlsweep.__version__, 'torch', torch.__version__, 'ray', ray.__version__)"

ENV PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0
# sweeps/launch.py and the space files live here; the launcher's default command.
CMD ["python", "sweeps/launch.py", "--list-spaces"]
