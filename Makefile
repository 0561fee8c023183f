# The two commands of the README: `make demo` and `make test`. Each sets up .venv from scratch;
# `make test` also installs the system packages and the pinned npm tools the suite needs when missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.package-lock.json
LINT_PATHS := $(wildcard finsentry tests bench lambdas glue_jobs sagemaker infra)
# jsii's banner for an end-of-life Node major (Node 20 since 2026-10-30; infra/__init__.py sets it too)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION ?= 20

.PHONY: demo test lint bench clean synth cdk-app system-packages locks

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the cdk CLI and the IAM policy simulator, exactly as package-lock.json pins them
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent

# chromium, promtool, node/npm, java: installed by the script CI uses, only when one is missing
system-packages:
	@.ci/system-packages

demo: $(STAMP)
	$(VENV)/bin/finsentry demo $(ARGS)

test: system-packages $(STAMP) $(NODE_STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# the CDK app's CloudFormation into cdk.out/ (no Docker, no AWS credentials; cdk-nag runs on it)
synth: $(STAMP)
	$(PY) -m infra.app

# what cdk.json runs for `npx cdk synth|diff|deploy`: the app on the project's venv, whatever is activated
cdk-app: $(STAMP)
	@$(PY) -m infra.app

# re-resolve the images' hash-locked requirements for their platforms (infra/images.py), from PyPI
locks: $(STAMP)
	PATH=$(VENV)/bin:$$PATH $(PY) -m infra.images

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)

bench: $(STAMP)
	$(PY) -m bench.generate
	$(PY) -m bench.detection

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info cdk.out node_modules
