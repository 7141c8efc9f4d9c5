# The single entry point. `make demo` and `make test` work on a fresh machine: every step
# installs what it needs (Debian packages, Maven jars, Python and Rust dependencies).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BULKOPS := $(VENV)/bin/bulkops
SESSIONS ?= 100000
STREAMS ?= 300
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(HOME)/.cargo/bin:$(PATH)

.PHONY: install build demo test lint format bench clean services-down

# -- install: system toolchains (only if missing), the venv, then one maturin build that
# installs the package editable with its Python deps (dev extras included).
RUST_SOURCES := $(wildcard rust/src/*.rs rust/src/**/*.rs)
$(VENV)/.installed: pyproject.toml Cargo.toml $(RUST_SOURCES)
	@command -v cargo >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q cargo rustc; }
	@command -v java >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless; }
	@command -v mvn >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q maven; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q 'maturin>=1.16,<2'
	$(VENV)/bin/maturin develop --release -E dev
	@# server/ (the Bridge) is importable as `bridge` from the venv
	@echo "$(abspath server)" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/bulkops-server.pth
	@touch $@

install: $(VENV)/.installed

# The Rust extension is rebuilt (incrementally) whenever rust/ or the manifests change.
build: install

demo: build
	$(BULKOPS) services up
	$(BULKOPS) migrate
	@set -e; out=$$($(BULKOPS) tenants create demo --exists-ok); \
	  echo "$$out" > .local/demo-tenant.json; \
	  if echo "$$out" | grep -q '"created": true'; then \
	    $(BULKOPS) -v seed --tenant demo --streams $(STREAMS) --sessions $(SESSIONS) \
	      --clips $$(( $(STREAMS) * 5 )) --audit-events 20000 --usage-records 5000; \
	  else echo "tenant demo exists: not seeding again (bulkops seed --tenant demo adds rows)"; fi
	$(BULKOPS) services up bridge dispatcher worker
	@token=$$($(PY) -c 'import json; print(json.load(open(".local/demo-tenant.json"))["token"])'); \
	  url=http://127.0.0.1:$${BULKOPS_BRIDGE_PORT:-8000}; \
	  echo; echo "== a bulk export through the API, end to end =="; \
	  $(BULKOPS) export --query bench/queries/viewer_sessions.graphql --out .local/demo-sessions.jsonl \
	    --token $$token --url $$url; \
	  echo "first line of .local/demo-sessions.jsonl:"; head -c 600 .local/demo-sessions.jsonl | head -1; \
	  echo; echo "== bulkops is up =="; $(BULKOPS) services status; echo; \
	  echo "GraphiQL:  $$url/graphql"; \
	  echo "token:     $$token   (also in .local/demo-tenant.json; shown once)"; echo; \
	  echo "A page of the sync API:"; \
	  echo "  curl -s $$url/graphql -H 'Authorization: Bearer $$token' -H 'Content-Type: application/json' \\"; \
	  echo "    -d '{\"query\": \"{ viewerSessionsConnection(page: {first: 3}) { totalCount nodes { id connectedAt city } } }\"}'"; echo; \
	  echo "A bulk export of every viewer session ($(SESSIONS)) through the API, with progress and checksum:"; \
	  echo "  cat bench/queries/viewer_sessions.graphql"; \
	  echo "  $(BULKOPS) export --query bench/queries/viewer_sessions.graphql --out sessions.jsonl --token $$token"; echo; \
	  echo "The same query straight through the engine:"; \
	  echo "  $(BULKOPS) run-query --tenant demo --query bench/queries/viewer_sessions.graphql --out file://$$PWD/.local/exports/demo.jsonl"; echo; \
	  echo "Stop everything: $(BULKOPS) services down"

test: build
	$(PY) -m pytest tests

lint: install
	$(VENV)/bin/ruff check python server tests bench
	$(VENV)/bin/ruff format --check python server tests bench
	$(VENV)/bin/mypy
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

format: install
	$(VENV)/bin/ruff format python server tests bench
	$(VENV)/bin/ruff check --fix python server tests bench
	cargo fmt

# The benchmarks bring up their own postgres+redis (.local/bench, ports 57xxx) and seed 1M and
# 5M viewer sessions once (BENCH_LARGE=0 skips the 5M tenant, BENCH_EXPERIMENTS=0 the variants).
bench: build
	$(PY) -m pytest bench --benchmark-enable -s --benchmark-columns=min,median,ops -p no:randomly

services-down: install
	$(BULKOPS) services down
	BULKOPS_HOME=.local/test BULKOPS_PG_PORT=55432 BULKOPS_REDIS_PORT=56379 BULKOPS_KAFKA_PORT=29092 \
	  BULKOPS_KAFKA_CONTROLLER_PORT=29093 BULKOPS_S3_PORT=28080 $(BULKOPS) services down || true

clean:
	rm -rf target $(VENV)
