# Two set-up-free entry points: `make demo` and `make test`. Each bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo sweep-demo test lint venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/autotune optimize configs/streaming.json --trials 20 --backend sim --restart

sweep-demo: $(STAMP)
	$(BIN)/autotune sweep configs/master_sweep.json --backend sim --restart

test: $(STAMP)
	$(BIN)/ruff check autotune objectives tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check autotune objectives tests bench
	$(BIN)/ruff format --check autotune objectives tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
