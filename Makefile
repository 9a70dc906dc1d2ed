# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
# `make deploy` needs only Python 3.11 and Node.js: it sets up its own lean $(DEPLOY_VENV).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
JARS_DIR := build/jars
JARS_STAMP := $(JARS_DIR)/.fetched
CLASS_ARCHIVE := build/jvm/spark-driver.jsa
CLASS_ARCHIVE_STAMP := build/jvm/.recorded
PORT ?= 8080
FILES ?=
# Every file pip reads for .venv: the groups in requirements/ are pyproject.toml's extras.
REQUIREMENTS := requirements.txt requirements-dev.txt requirements/base.txt \
	requirements/deploy.txt requirements/spark.txt requirements/local.txt requirements/dev.txt \
	constraints.txt pyproject.toml
# make deploy: the [deploy] extra only (no Spark, pyarrow, moto), in its own venv. A test
# points DEPLOY_VENV at a venv that already holds it; DEPLOY_ARGS go after the subcommand.
DEPLOY_VENV ?= .venv-deploy
DEPLOY_PY := $(DEPLOY_VENV)/bin/python
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed-deploy
DEPLOY_ARGS ?=
NODE_DEPLOY_STAMP := node_modules/.installed-deploy

export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
export SAGEMAKER_SUPPRESS_V2_WARNING := 1

.PHONY: setup prereqs prereqs-deploy deploy browser test test-fast lint typecheck lint-asl pytest demo serve screenshot bench glue-docker clean

prereqs:
	@scripts/check_prereqs.sh $(PYTHON)

# Python 3.11 and Node.js only: what make deploy needs.
prereqs-deploy:
	@scripts/check_prereqs.sh --deploy $(PYTHON)

# Re-installs only when a requirements file changes.
$(VENV_STAMP): $(REQUIREMENTS) | prereqs
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# The Iceberg Spark runtime and AWS bundle jars local Spark uses (AWS Glue 5.0 ships the same
# version): fetched once from Maven Central, checked against the SHA-256 pinned in
# duffbeer_local/jars.py; nothing downloads a jar at run time.
$(JARS_STAMP): duffbeer_local/jars.py | $(VENV_STAMP)
	$(PY) -m duffbeer_local.jars $(JARS_DIR)
	@touch $@

# The classes a local Spark driver loads, recorded once so that every driver maps them
# instead of loading them (about half of a driver's start-up CPU): duffbeer_local/class_archive.py.
# Optional: without it (a JDK that cannot record one) drivers start as usual, only slower.
$(CLASS_ARCHIVE_STAMP): $(VENV_STAMP) $(JARS_STAMP) duffbeer_local/class_archive.py duffbeer_local/class_archive_exercise.py
	$(PY) -m duffbeer_local.class_archive $(CLASS_ARCHIVE)
	@touch $@

# npm brings the ASL linter, the chart library vendored into the API zip and the headless
# Chromium of the browser tests (all pinned in package-lock.json).
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found; the ASL lint, the reports page's chart library and the browser tests come from npm packages. Install Node.js 20+ (e.g. apt-get install nodejs npm)." >&2; exit 1; }
	npm ci --silent --no-audit --no-fund
	@touch $@

# What packaging needs from npm: chart.js, vendored into the API zip (package.json's only
# "dependency"; the linter and Chromium are devDependencies). When node_modules already holds
# the chart.js version package-lock.json pins (e.g. from make setup's full install), npm is
# not run, so a deploy never removes the devDependencies the tests use.
$(NODE_DEPLOY_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found; the API package vendors the reports page's chart library from npm. Install Node.js 20+ (e.g. apt-get install nodejs npm, or brew install node)." >&2; exit 1; }
	@node -e 'const pin = require("./package-lock.json").packages["node_modules/chart.js"].version; process.exit(require("./node_modules/chart.js/package.json").version === pin ? 0 : 1)' 2>/dev/null \
	|| { echo "npm ci --omit=dev"; npm ci --omit=dev --silent --no-audit --no-fund; }
	@touch $@

# The deploy's own venv: requirements/base.txt + deploy.txt, i.e. pip install -e '.[deploy]'.
$(DEPLOY_STAMP): requirements/base.txt requirements/deploy.txt constraints.txt pyproject.toml | prereqs-deploy
	@test -x $(DEPLOY_PY) || { $(PYTHON) -m venv $(DEPLOY_VENV) && echo '*' > $(DEPLOY_VENV)/.gitignore; }
	$(DEPLOY_PY) -m pip install --quiet --disable-pip-version-check -r requirements/base.txt -r requirements/deploy.txt -c constraints.txt
	$(DEPLOY_PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Deploys the stack (AWS, or DEPLOY_ARGS="--endpoint-url URL"): prints the diff, then deploys.
deploy: prereqs-deploy $(DEPLOY_STAMP) $(NODE_DEPLOY_STAMP)
	$(DEPLOY_PY) deploy/create_workflow.py diff $(DEPLOY_ARGS)
	$(DEPLOY_PY) deploy/create_workflow.py deploy $(DEPLOY_ARGS)

# The headless Chromium of the browser tests: unpacked from the npm package, or Debian's.
browser: setup $(NODE_STAMP)
	@scripts/check_prereqs.sh --browser $(PY)

setup: prereqs $(VENV_STAMP) $(JARS_STAMP) $(CLASS_ARCHIVE_STAMP)

lint: setup
	$(PY) -m ruff check .

typecheck: setup
	$(PY) -m mypy

lint-asl: setup $(NODE_STAMP)
	$(PY) workflows/export.py build/workflow
	node_modules/.bin/asl-validator --json-path build/workflow/orders_etl.asl.json

pytest: setup $(NODE_STAMP) browser
	$(PY) -m pytest --durations=15

test: lint typecheck lint-asl pytest

# The edit-run loop: unit and functional tests (moto in-process or on 127.0.0.1), without
# Spark, the local stack or the Spark cluster, in two processes (pytest-xdist; each test
# file stays in one process, since its tests share module fixtures). `make test` runs all.
FAST_TESTS := -m "not spark and not e2e and not cluster"
test-fast: setup $(NODE_STAMP)
	$(PY) -m pytest $(FAST_TESTS) -n 2 --dist loadfile --durations=10

demo: setup $(NODE_STAMP)
	$(PY) -m duffbeer_local demo

serve: setup $(NODE_STAMP)
	$(PY) -m duffbeer_local serve --port $(PORT) $(FILES)

# The README's picture of the reports page, over a month of generated orders (30 days, five
# channels, three statuses: python -m bench.generate_orders --rows 600 --seed 7 <file>).
screenshot: setup $(NODE_STAMP) browser
	$(PY) -m duffbeer_local screenshot --file data/sample/orders-november.csv --out docs/images/dashboard.png

bench: setup
	$(PY) -m bench

# The transform job in AWS's Glue 5.0 image: runs it when docker is present, else prints it.
glue-docker: setup
	@PY=$(PY) scripts/glue_docker.sh

clean:
	rm -rf build .local .pytest_cache .mypy_cache .ruff_cache spark-warehouse
