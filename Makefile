# The two commands of the README:  `make demo`  and  `make test` (which runs `make lint`
# first). All targets create ./.venv on first use and install what they need into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: install demo lint format test bench gpu-check clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test,faiss,lightning]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/train_sysu.py --demo $(DEMO_ARGS)

# ruff and mypy versions are pinned in setup.cfg ([test] extra) and constraints.txt
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy sdcl_toolkit

# rewrite the sources so that `make lint`'s ruff steps pass (mypy findings stay manual)
format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: $(STAMP) lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/association_speed.py

# One-command GPU check (benchmarks/gpu_check.py): CUDA tests, association, 1M samples, ViT-B
# step, data pipeline -> docs/results/gpu_check.json + .md; `make gpu-check DEVICE=cpu QUICK=1`
# runs the same steps small on a CPU. OUT=path.json writes elsewhere.
DEVICE ?= cuda
QUICK ?=
OUT ?=
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py --device $(DEVICE) $(if $(QUICK),--quick) $(if $(OUT),--out $(OUT))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache
