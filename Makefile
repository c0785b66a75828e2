# Two commands on a fresh machine: `make demo` (install + train the tiny model on arith-python),
# `make test` (install + the whole test suite). Both are idempotent; re-runs skip what is done.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/agentrl: pyproject.toml
	@scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

demo: $(BIN)/agentrl
	$(BIN)/agentrl train arith-python --set run.name=demo-$$(date +%Y%m%d-%H%M%S)

test: $(BIN)/agentrl
	$(BIN)/ruff check agentrl tests benchmarks
	@# pytest exits 5 when it collected nothing: say so plainly (this suite always has tests).
	@$(BIN)/pytest -q; rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests: check testpaths" >&2; exit $$rc

bench: $(BIN)/agentrl
	$(BIN)/python benchmarks/train.py

clean:
	rm -rf $(VENV) runs .pytest_cache
