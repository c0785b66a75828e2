# Two commands on a fresh machine: `make demo` (install + train the tiny model on arith-python),
# `make test` (install + the whole test suite). Both are idempotent; re-runs skip what is done.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

VERL_VENV ?= .venv-verl

.PHONY: demo test bench verl-venv clean

$(BIN)/agentrl: pyproject.toml
	@scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

demo: $(BIN)/agentrl
	$(BIN)/agentrl train arith-python --set run.name=demo-$$(date +%Y%m%d-%H%M%S)

# verl pins its own transformers range, so the parity tests run it in a venv of its own (they skip without it).
$(VERL_VENV)/bin/python:
	@$(PYTHON) -m venv $(VERL_VENV) && $(VERL_VENV)/bin/pip install -q --disable-pip-version-check \
	  torch==2.13.0 verl==0.9.1 || { echo "verl venv failed: verl parity tests will skip" >&2; rm -rf $(VERL_VENV); }

verl-venv: $(VERL_VENV)/bin/python

test: $(BIN)/agentrl verl-venv
	$(BIN)/ruff check agentrl tests benchmarks tasks
	$(BIN)/ruff format --check agentrl tests benchmarks tasks
	@# pytest exits 5 when it collected nothing: say so plainly (this suite always has tests).
	@$(BIN)/pytest -q; rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests: check testpaths" >&2; exit $$rc

bench: $(BIN)/agentrl
	$(BIN)/python benchmarks/train.py

clean:
	rm -rf $(VENV) $(VERL_VENV) runs .pytest_cache
