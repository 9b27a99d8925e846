# In-cluster image of the notebook controller: `python -m notebook_controller run`, as a non-root
# user. BASE is any Debian-like image: with python:3.x-slim its Python is used; on a bare Debian
# (hack/images.sh builds from its own debootstrapped bookworm) Debian's python3 is installed.
#   docker build -t notebook-controller:0.1.0 .
# pip trusts the optional build secret `ca-bundle` if given (for TLS-intercepting proxies).
ARG BASE=python:3.12-slim

FROM ${BASE} AS python
ARG DEBIAN_FRONTEND=noninteractive
RUN if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi

FROM python AS build
COPY pyproject.toml /src/
COPY notebook_controller /src/notebook_controller
RUN --mount=type=secret,id=ca-bundle \
    set -e; \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    python3 -m venv /opt/notebook-controller; \
    /opt/notebook-controller/bin/pip install --no-cache-dir --disable-pip-version-check \
      --progress-bar off /src; \
    /opt/notebook-controller/bin/pip uninstall -y --disable-pip-version-check pip

FROM python
COPY --from=build /opt/notebook-controller /opt/notebook-controller
ENV PATH=/opt/notebook-controller/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["python", "-m", "notebook_controller"]
CMD ["run"]
