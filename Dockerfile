# syntax=docker/dockerfile:1
# One image for every ticketguard role; the command picks it: api | dashboard | worker | migrate | any
# `ticketguard` sub-command (docs/deploy.md). No model is baked in: the API loads the registry's live model
# from MODEL_STORE_URL / MODEL_DIR at start and follows promotions.
#
#   docker build -t ticketguard:1.0.0 .                                              # python:3.11-slim
#   docker build --build-arg BASE_IMAGE=ticketguard-base:bookworm -t ticketguard .   # no Docker Hub here
#
# The base must be Debian bookworm-like with python3 ≥ 3.11 and the venv module (python:3.11-slim, or the
# debootstrap image of deploy/base-image.sh).
ARG BASE_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------------------- requirements
# The dependency list alone, so that editing pyproject.toml's tool settings does not reinstall everything:
# the build stage's install layer is reused while this file's content is unchanged.
FROM ${BASE_IMAGE} AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt

# ---------------------------------------------------------------------------------------------- build
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=120
# Extra CA certificates for a TLS-intercepting proxy between the build and PyPI (deploy/ca/*.crt, not
# committed). Only this stage sees them: the runtime image trusts the base's bundle alone.
COPY deploy/ca/ /tmp/ca/
RUN python3 -m venv /opt/venv \
 && if ls /tmp/ca/*.crt >/dev/null 2>&1; then cat /tmp/ca/*.crt > /tmp/ca/bundle.pem; fi
WORKDIR /src
# Dependencies in their own layer: a code change does not reinstall them.
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
ARG EXTRA_PACKAGES=""
RUN if [ -f /tmp/ca/bundle.pem ]; then export PIP_CERT=/tmp/ca/bundle.pem; fi \
 && /opt/venv/bin/pip install --quiet -r /tmp/requirements.txt ${EXTRA_PACKAGES}
COPY pyproject.toml README.md ./
COPY src ./src
RUN if [ -f /tmp/ca/bundle.pem ]; then export PIP_CERT=/tmp/ca/bundle.pem; fi \
 && /opt/venv/bin/pip install --quiet --no-deps . \
 && /opt/venv/bin/python -m pip uninstall --quiet -y pip setuptools wheel  # the runtime installs nothing

# -------------------------------------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime
# tini as PID 1: signals reach the server (SIGTERM drains it), zombies are reaped. libgomp: XGBoost's
# OpenMP runtime. Nothing else: no compiler, no package caches.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tini libgomp1 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/ticketguard --shell /usr/sbin/nologin ticketguard \
 && mkdir -p /var/lib/ticketguard/models \
 && chown -R ticketguard:ticketguard /var/lib/ticketguard
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint
COPY deploy/healthcheck.py /usr/local/lib/ticketguard-healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/var/lib/ticketguard \
    API_HOST=0.0.0.0 \
    API_PORT=5001 \
    DASHBOARD_PORT=8050
WORKDIR /var/lib/ticketguard
USER 10001:10001
EXPOSE 5001 8050
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python3", "/usr/local/lib/ticketguard-healthcheck.py"]
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/usr/local/bin/docker-entrypoint"]
CMD ["api"]
