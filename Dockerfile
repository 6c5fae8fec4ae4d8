# The orchestrator: one image for the scheduler and the web server (`docker-compose.yml`).
#
# The base is a build argument so the same file builds online (the public default) and on a
# host that cannot reach a registry, on the local `orchestrator/python-base:bookworm` made by
# `orchestrator images bootstrap` (`scripts/compose.sh` passes it). Layers go from the least to
# the most often changed: system packages, then the Python dependencies, then the package's
# source, so editing code rebuilds only the last steps.
ARG BASE_IMAGE=python:3.11-slim

# The requirements (the build backend, the dependencies and the `postgres` extra) as a file of
# their own: the install below is cached on this file's content, so editing other parts of
# pyproject.toml (tool settings, dev dependencies) does not download everything again.
FROM ${BASE_IMAGE} AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c 'import tomllib; t = tomllib.load(open("/tmp/pyproject.toml", "rb")); p = t["project"]; print("\n".join(t["build-system"]["requires"] + p["dependencies"] + p["optional-dependencies"]["postgres"]))' > /tmp/requirements.txt

FROM ${BASE_IMAGE}

# PEM certificates to trust in addition to the base's (for a TLS-inspecting proxy between the
# build and the package index); certificates are public, so a build argument is fine.
ARG EXTRA_CA_CERTS=""
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8

# Debian's python3 splits venv/ensurepip into python3-venv; the official python images have it.
# apt reads the base image's own sources (for the local base: the host's mirror, copied by
# debootstrap).
RUN set -eux; \
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv; \
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb; \
    fi; \
    if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/orchestrator-build-extra.crt; \
        update-ca-certificates; \
    fi; \
    python3 -m venv /opt/orchestrator/venv; \
    groupadd --system --gid 10001 orchestrator; \
    useradd --system --uid 10001 --gid orchestrator --home-dir /var/lib/orchestrator \
        --create-home --shell /usr/sbin/nologin orchestrator

ENV PATH=/opt/orchestrator/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

# Dependencies only: this layer is rebuilt when they change, not when code does.
COPY --from=requirements /tmp/requirements.txt /opt/orchestrator/requirements.txt
RUN pip install -q -r /opt/orchestrator/requirements.txt

COPY pyproject.toml README.md /opt/orchestrator/src/
COPY orchestrator /opt/orchestrator/src/orchestrator
RUN set -eux; \
    pip install -q --no-deps --no-build-isolation /opt/orchestrator/src; \
    rm -rf /opt/orchestrator/src/build
COPY deploy/entrypoint.sh /usr/local/bin/orchestrator-entrypoint
COPY deploy/init.sh /usr/local/bin/orchestrator-init
RUN chmod 755 /usr/local/bin/orchestrator-entrypoint /usr/local/bin/orchestrator-init

ENV ORCH_HOME=/var/lib/orchestrator \
    ORCH_WEB_HOST=0.0.0.0 \
    ORCH_WEB_PORT=8080
USER orchestrator
WORKDIR /var/lib/orchestrator
EXPOSE 8080
ENTRYPOINT ["orchestrator-entrypoint"]
CMD ["--help"]
