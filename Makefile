# govhub — every developer and user command. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PROTO_SRC := $(shell find protos -name '*.proto' 2>/dev/null)
GEN := gen
GEN_STAMP := $(GEN)/.stamp
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
# axe-core: the accessibility rules the browser tests run on every page (injected by the test driver;
# the pages never load it)
AXE_VERSION := 4.10.3
AXE := .tools/node_modules/axe-core/axe.min.js

.PHONY: help install protos lint fmt test unit service e2e run seed bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(INSTALLED) ## create .venv and install govhub with its development tools

$(GEN_STAMP): $(INSTALLED) $(PROTO_SRC)
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(GEN) --grpc_python_out=$(GEN) --pyi_out=$(GEN) $(PROTO_SRC)
	$(PY) -c 'import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "govhub_gen.pth").write_text(str(pathlib.Path("$(GEN)").resolve()) + "\n")'
	@touch $@

protos: $(GEN_STAMP) ## generate the protobuf/gRPC code (with .pyi stubs) into gen/, on the venv's path

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

# Without npm nothing is installed here and the browser tests skip, naming axe-core.
$(AXE):
	@if command -v npm >/dev/null; then \
	  npm install --silent --no-audit --no-fund --prefix .tools axe-core@$(AXE_VERSION) \
	    || echo "axe-core $(AXE_VERSION) could not be installed from npm: the browser tests will skip"; \
	else echo "npm is missing: the browser tests will skip (they need axe-core $(AXE_VERSION) from npm)"; fi

deploy-lint: $(INSTALLED) ## validate deploy/: kustomize overlays and compose against their schemas, the Dockerfile
	$(PY) -m deploy.validate

lint: $(GEN_STAMP) $(BUF) deploy-lint ## ruff, mypy, buf lint, deploy-lint, and a check that no generated code is tracked
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd protos && ../$(BUF) lint
	@! git ls-files | grep -E '_pb2(_grpc)?\.pyi?$$' || (echo "generated code is tracked by git" && false)

fmt: $(INSTALLED) ## format the code and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# make test spreads the test files over TEST_WORKERS processes (pytest-xdist; a file's tests stay together,
# so a module's hub is started once); TEST_WORKERS=0 runs everything in one process, in order.
TEST_WORKERS ?= 2

test: $(GEN_STAMP) $(AXE) ## run every test (unit, service, e2e, browser); PostgreSQL too when GOVHUB_TEST_POSTGRES_URL is set
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

unit: $(GEN_STAMP) ## pure domain tests only
	$(PY) -m pytest -q tests/unit

service: $(GEN_STAMP) ## one real server in-process per test
	$(PY) -m pytest -q tests/service

e2e: $(GEN_STAMP) ## real processes over real ports
	$(PY) -m pytest -q tests/e2e

run: $(GEN_STAMP) ## start the whole hub on SQLite under var/ (Ctrl-C stops it)
	@exec $(PY) -m deploy.launcher

seed: $(GEN_STAMP) ## load the synthetic demo population (default 300 households; N=1000000 for about a million people)
	$(PY) -m services.residence.seed $(if $(N),--people $(N))

.PHONY: migrate
migrate: $(INSTALLED) ## upgrade every database (GOVHUB_<PROCESS>_DATABASE_URL, default var/) to the schema head
	$(PY) -m deploy.migrate upgrade all

.PHONY: token
token: $(GEN_STAMP) ## mint a development bearer token: make token ROLE=citizen SUB=me ID=<id number> [HALL= DEPT=]
	@$(PY) -m gateway.auth token --role "$(ROLE)" --sub "$(SUB)" $(if $(ID),--id "$(ID)") $(if $(HALL),--hall "$(HALL)") $(if $(DEPT),--dept "$(DEPT)")

.PHONY: certs audit-verify audit-deps lock
certs: $(INSTALLED) ## development CA + server/client certificates in var/certs/ and var/audit.key, for GOVHUB_TLS=on
	$(PY) -m services.common.certs --dir "$${GOVHUB_VAR_DIR:-var}/certs"

audit-verify: $(GEN_STAMP) ## check every audit chain (the processes' settings: GOVHUB_VAR_DIR, GOVHUB_<PROCESS>_DATABASE_URL; or DB=<url>); one line per chain
	@if [ -n "$(DB)" ]; then exec $(PY) -m services.common.audit verify --database "$(DB)"; fi; \
	exec $(PY) -m services.common.audit verify-all

lock: $(INSTALLED) ## write requirements.lock: the exact versions of everything installed (what make audit-deps checks)
	$(PY) -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^govhub' > requirements.lock

audit-deps: $(INSTALLED) ## check the locked dependencies for known vulnerabilities (pip-audit; not part of make test)
	@$(PY) -m deploy.audit_deps

bench: $(GEN_STAMP) ## benchmarks (not part of make test): gateway beside bare, saturation and half load; var/bench/
	$(PY) -m tests.perf.bench $(BENCH_ARGS)

.PHONY: bench-postgres bench-scale bench-soak
bench-postgres: $(GEN_STAMP) ## make bench on the local PostgreSQL (GOVHUB_BENCH_POSTGRES_URL; own databases, dropped after)
	$(PY) -m tests.perf.bench --database postgresql $(BENCH_ARGS)

bench-scale: $(GEN_STAMP) ## GetPerson and VerifyHukou at 10 k and at 1 M seeded people (registers kept in var/bench/scale)
	$(PY) -m tests.perf.scale --people 10000,1000000 $(SCALE_ARGS)

bench-soak: $(GEN_STAMP) ## make bench, then 100 k more requests watching each process's memory
	$(PY) -m tests.perf.bench --soak 100000 $(BENCH_ARGS)

clean: ## remove the venv, generated code and local databases
	rm -rf $(VENV) $(GEN) var .tools .pytest_cache .ruff_cache
