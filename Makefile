# Two commands: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch==2.13.0 (CPU build) lies on this machine's disk; pinning it first keeps pip from
# pulling a multi-GB CUDA wheel. On a machine with CUDA, install torch yourself beforehand.
TORCH ?= torch==2.13.0

.PHONY: demo test test-fast lint evaluate evaluate-corpus bench release clean

# The demo needs the library and the learned extra; the tests add the test tools (PySide6, VTK,
# slicer-core, ruff), which are large.
$(BIN)/.demo-installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[learned]"
	touch $@

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: $(BIN)/.demo-installed
	$(BIN)/python -m hrinet.cli.demo --out out
	@echo "the hrinet command: $(BIN)/hrinet --help (or: source $(BIN)/activate)"

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# The quick loop while editing: everything but the tests marked slow, on JOBS processes
# (pytest-xdist; default 2, the cores of the reference machine).
JOBS ?= 2
test-fast: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow" -n $(JOBS)

# Pyflakes-level checks (unused or undefined names, syntax): the whole repository's Python.
lint: $(BIN)/.installed
	$(BIN)/ruff check --quiet --select F,E9 HRINetLib HRINetSlicer Testing benchmarks

# The README's results tables: validation volumes (never trained on), every method, both
# protocols (decimated thin slices; simulated slab-averaged thick slices); then the paper's
# claims checked from those numbers (bone at a six-slice gap, reconstruction at a = 1).
# The real CT beside the checkout, or $HRINET_SHARED_CT (as the tests and benchmarks read it).
SHARED_CT := $(or $(HRINET_SHARED_CT),../shared/data/ct)
EVAL_VOLUMES := $(SHARED_CT)/chest-lungfcp-1mm.nrrd $(SHARED_CT)/head-ge-1p25mm.nrrd
EVAL_METHODS := linear,cubic,flow,ae,acai,hrinet-patchgan,hrinet-mse,hrinet-perceptual,hrinet-plus,hrinet
evaluate: $(BIN)/.installed
	$(BIN)/hrinet evaluate $(EVAL_VOLUMES) --factors 2,4,6,8 --methods $(EVAL_METHODS) \
	  --device cpu --precision fp32 --out out/evaluate --overwrite
	$(BIN)/hrinet evaluate $(EVAL_VOLUMES) --protocol slab --factors 2,4,6 \
	  --methods linear,cubic,flow,hrinet-plus,hrinet --device cpu --precision fp32 \
	  --out out/evaluate-slab --overwrite
	$(BIN)/python benchmarks/paper_claims.py --evaluated out/evaluate --out out/paper

# Every validation series of the corpus (benchmarks/data: built with build_corpus.py into
# $(CORPUS)), the default against linear, cubic and flow, per volume (README "Results").
CORPUS ?= ../corpus
evaluate-corpus: $(BIN)/.installed
	$(BIN)/hrinet evaluate $$($(BIN)/python benchmarks/data/build_corpus.py --out $(CORPUS) \
	  --list validation) --factors 2,4,6 --methods linear,cubic,flow,hrinet --device cpu \
	  --precision fp32 --out out/evaluate-corpus --overwrite
	$(BIN)/python benchmarks/summarise.py out/evaluate-corpus

# Speed, memory and system-time share per method and size; then the README's whole-volume
# example (the 8 mm chest made isotropic) when the shared data is present.
BENCH_VOLUME := $(SHARED_CT)/chest-lungdx-8mm.nrrd
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_engine.py
	@if [ -f $(BENCH_VOLUME) ]; then $(BIN)/python benchmarks/bench_volume.py $(BENCH_VOLUME); fi
	$(BIN)/python benchmarks/bench_cli.py $(wildcard $(BENCH_VOLUME))

clean:
	rm -rf $(VENV) out

# What a release publishes (benchmarks/release.py): dist/SlicerHRINet, the extension's repository
# as one commit with the default model, and dist/assets, every other model for `hrinet models
# --get`; then checked as the Extensions Index checks a submission (a clone under 100 MB ...).
release: $(BIN)/.demo-installed
	$(BIN)/python benchmarks/release.py --out dist
