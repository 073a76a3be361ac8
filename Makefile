# Two commands on a fresh machine (Python 3.11, Node 20, npm, make):
#   make demo   - the whole pipeline locally, on an embedded moto server
#   make test   - lint + the whole test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LINT_VENV := .venv-lint
PY := $(VENV)/bin/python
STAGE ?= dev

.PHONY: setup demo serve test unit lint security bench report-package package deploy invoke-local clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(LINT_VENV)/.installed: requirements-lint.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet --upgrade pip
	$(LINT_VENV)/bin/pip install --quiet -r requirements-lint.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

setup: $(VENV)/.installed $(LINT_VENV)/.installed node_modules/.installed

## The main job: the whole pipeline locally on moto, sample CSV in, Athena queries out.
demo: $(VENV)/.installed node_modules/.installed
	$(PY) -m local.demo

## Keep the local stack running on port 4566 for your own uploads (Ctrl-C stops it).
serve: $(VENV)/.installed node_modules/.installed
	$(PY) -m local.demo --serve --port 4566

## Everything CI checks.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n 2 --dist loadfile

unit: $(VENV)/.installed
	$(PY) -m pytest -m "not integration and not infra"

$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@

## Benchmarks: writes docs/benchmarks.md (see bench/README.md).
bench: $(VENV)/.bench-installed
	$(PY) -m bench

## The report function's zip (lambdas/, athena-queries.sql, sqlglot for Lambda python3.12): docs/infrastructure.md.
report-package: $(VENV)/.installed
	$(PY) -m tools.build_report_package

package: report-package node_modules/.installed
	SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off AWS_EC2_METADATA_DISABLED=true \
	  npx serverless package --stage $(STAGE) $(SLS_ARGS)

## Deploy stage STAGE with your AWS credentials; extra CLI arguments in SLS_ARGS ('--param="iamMode=labRole"').
deploy: report-package node_modules/.installed
	SLS_TELEMETRY_DISABLED=1 npx serverless deploy --stage $(STAGE) $(SLS_ARGS)

## Run one handler on this machine against deployed stage STAGE (`serverless invoke local` with the event filled
## with the stage's bucket, the .venv and the function's timeout; see tools/invoke_local.py for what it needs).
##   make invoke-local FUNCTION=ingestarTickets STAGE=dev [KEY=uploads/tickets.csv]
##   make invoke-local FUNCTION=actualizarComprasStream STAGE=dev [EVENT=modify.json]
##   make invoke-local FUNCTION=generarReporteCompras STAGE=dev [TENANT=… FROM=YYYY-MM-DD TO=YYYY-MM-DD]
invoke-local: $(VENV)/.installed node_modules/.installed
	@test -n "$(FUNCTION)" || { echo "FUNCTION=ingestarTickets|actualizarComprasStream|generarReporteCompras is required"; exit 2; }
	$(PY) -m tools.invoke_local $(FUNCTION) --stage $(STAGE) $(if $(EVENT),--event "$(EVENT)") \
	  $(if $(KEY),--key "$(KEY)") $(if $(TENANT),--tenant "$(TENANT)") $(if $(FROM),--from "$(FROM)") \
	  $(if $(TO),--to "$(TO)")

clean:
	rm -rf $(VENV) $(LINT_VENV) node_modules .serverless .build .pytest_cache .ruff_cache
