# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint perf venv clean bench

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

# The wall-clock budgets of the tests marked perf (a quiet machine: not part of CI).
perf: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m perf --perf

# The quality gate (issue 14): ruff with the rule set of pyproject.toml, mypy on knet/.
lint: $(STAMP)
	$(BIN)/ruff check knet tests bench examples
	$(BIN)/mypy

# Every benchmark once, with small sizes: a smoke run (minutes, not the published figures;
# each script's docstring gives the full-size command). The load benches against nginx and
# knotd need those tools and are skipped (exit 2) where they are not installed.
bench: $(STAMP)
	$(BIN)/python bench/iptables.py --sizes 100 --packets 200
	$(BIN)/python bench/modes.py --sizes 100 --packets 100 --plot=
	$(BIN)/python bench/netfilter.py --services 100 --samples 200
	$(BIN)/python bench/scale.py --case small
	$(BIN)/python bench/yaml_load.py --services 300 --rounds 1
	$(BIN)/python bench/fabric_http.py --requests 200 --rounds 1
	$(BIN)/python bench/runtime_http.py --requests 100 --rounds 1 --no-ready
	PYTHON=$(BIN)/python DURATION=2s bench/ingress.sh || [ $$? -eq 2 ]
	PYTHON=$(BIN)/python SERVICES=100 DURATION=2 bench/dns.sh || [ $$? -eq 2 ]

clean:
	rm -rf $(VENV) build *.egg-info
