# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lint]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/knet demo -f topologies/demo.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The quality gate (issue 14): ruff with the rule set of pyproject.toml, mypy on knet/.
lint: $(STAMP)
	$(BIN)/ruff check knet tests bench examples
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
