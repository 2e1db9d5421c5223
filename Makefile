# Two set-up-free entry points: `make demo` and `make test`. Each bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo sweep-demo test test-portable lint venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/autotune optimize configs/spotify.json --trials 20 --backend sim --restart

sweep-demo: $(STAMP)
	$(BIN)/autotune sweep configs/master_sweep.json --backend sim --restart

# Three workers on two cores: a fifth of the suite's time is spent waiting (on the autotune processes the
# end-to-end tests start, on sockets), which a third worker fills (288 s on two workers, 253 s on three).
test: $(STAMP)
	$(BIN)/ruff check autotune objectives tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 3 --dist worksteal --durations=15

# The DSP and model tests once more on numpy's baseline kernels (every SIMD group this CPU has switched off):
# they compare audio with tolerances, so they must pass whatever kernels numpy picks.
test-portable: $(STAMP)
	NPY_DISABLE_CPU_FEATURES="$$($(BIN)/python bench/numpy_features.py)" \
		$(BIN)/python -c "import numpy; numpy.show_runtime()" | grep -A2 simd_extensions
	NPY_DISABLE_CPU_FEATURES="$$($(BIN)/python bench/numpy_features.py)" \
		$(BIN)/python -m pytest -q -n 2 --dist worksteal -p no:cacheprovider -m "not slow" tests/test_dsp.py tests/test_model.py

lint: $(STAMP)
	$(BIN)/ruff check autotune objectives tests bench
	$(BIN)/ruff format --check autotune objectives tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
