# The two commands of the README: `make demo` and `make test`. Each sets up .venv from scratch.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LINT_PATHS := $(wildcard finsentry tests bench lambdas glue_jobs sagemaker infra)

.PHONY: demo test lint bench clean synth

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/finsentry demo $(ARGS)

test: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# the CDK app's CloudFormation into cdk.out/ (no Docker, no AWS credentials; cdk-nag runs on it)
synth: $(STAMP)
	JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 $(PY) -m infra.app

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)

bench: $(STAMP)
	$(PY) -m bench.generate
	$(PY) -m bench.detection

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info cdk.out
