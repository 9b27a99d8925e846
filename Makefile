# The two commands a newcomer needs: `make run` and `make test` (see README).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv run test test-unit lint manifests refresh-podspec bench cluster-build cluster-up cluster-down cluster-status images clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	hack/bootstrap-python.sh $(VENV)

cluster-build:
	hack/cluster.sh build

cluster-up:
	hack/cluster.sh up

cluster-down:
	hack/cluster.sh down

cluster-status:
	hack/cluster.sh status

# Build the container images (images/, Dockerfile) with buildah and push them to the local
# registry ($NBCTL_REGISTRY, else the one `make cluster-up` started); IMAGES="pause testimage" for some.
images:
	hack/images.sh build $(IMAGES)

run: venv
	hack/run.sh

test: venv
	hack/test.sh

test-unit: venv
	$(PY) -m pytest tests/unit -q

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests

manifests: venv
	$(PY) -m notebook_controller.api.crdgen --output deploy/crd/notebooks.tensorstack.dev.yaml

# Re-vendor the PodSpec schema of the pinned Kubernetes (hack/cluster/versions.env), then regenerate.
refresh-podspec: venv
	$(PY) -m notebook_controller.api.podspec --version $$(sed -n 's/^KUBERNETES_VERSION=//p' hack/cluster/versions.env)
	$(MAKE) manifests

# Micro-benchmarks, then the cluster benchmark (N=100 and 1000 beside a bare client's limit;
# BENCH_N="100" for one size): .bench/latest.json and .bench/bench.png. Needs the local cluster.
bench: venv
	$(PY) -c 'import matplotlib' 2>/dev/null || $(PY) -m pip install -q -e '.[bench]'
	$(PY) hack/bench.py
	$(PY) hack/bench_cluster.py

clean:
	hack/cluster.sh down || true
	rm -rf .cluster
