# One command to run the portal, one to test it. Everything installs into .venv from the hashed lock files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: run dev test lint install lock browsers axe clean mutation

run: install  ## start the portal on the embedded default (Ctrl-C stops it)
	$(PY) manage.py run

dev: install  ## the same with DEBUG on
	$(PY) manage.py run --dev

test: install browsers axe lint  ## every test, browser tests included, then lint
	$(PY) -m pytest -n 2 --dist loadgroup

# Mutation testing (not part of `make test`): mutants of the egress gate, the vault, the audit chain and the
# search permission filter (acl_for), each run against the tests that reach it; its own data under var/mutation.
MUTANTS := "audit.chain.*" "governance.gate.*" "governance.vault.*" "knowledge.search.x_acl_for__*"
mutation: install  ## mutation check with mutmut (tens of minutes on 2 cores), then the survivors per module
	$(PIP) install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements/mutation.txt
	rm -rf mutants
	PORTAL_VAR_DIR=$(CURDIR)/var/mutation $(VENV)/bin/mutmut run --max-children 2 $(MUTANTS)
	$(PY) tests/mutation_summary.py $(MUTANTS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

install: $(STAMP)

$(STAMP): requirements/base.txt requirements/dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --require-hashes -r requirements/base.txt -r requirements/dev.txt
	touch $(STAMP)

browsers:  ## Debian's chromium for the browser tests (never a browser download)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

axe:  ## axe-core for the accessibility browser test: npm ci from tests/e2e/axe/package-lock.json (integrity-checked)
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; fi; }
	@test -f tests/e2e/axe/node_modules/axe-core/axe.min.js || \
	  npm ci --prefix tests/e2e/axe --ignore-scripts --no-audit --no-fund --silent

lock:  ## re-resolve requirements/*.txt from requirements/*.in (needs the package index)
	$(PIP) install --quiet pip-tools
	cd requirements && ../$(VENV)/bin/pip-compile --generate-hashes --allow-unsafe --strip-extras -q -o base.txt base.in
	cd requirements && ../$(VENV)/bin/pip-compile --generate-hashes --allow-unsafe --strip-extras -q -o dev.txt dev.in

clean:  ## remove the virtualenv (var/, the data, is kept)
	rm -rf $(VENV)
