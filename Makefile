# ColdOpen developer commands. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Random-init CLIP works offline; with Hugging Face hub access use e.g. CLIP_PRETRAINED=laion2b_s34b_b79k.
CLIP_PRETRAINED ?= none
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint serve proto samples bench clean gpu-suite-tiny

$(BIN)/.installed: pyproject.toml
	@echo "Creating $(VENV): about 3 GB of downloads and 7 GB on disk, mostly PyTorch's CUDA libraries (PyPI's"
	@echo "Linux torch wheels carry them even where there is no GPU). Minutes on a fast link, up to half an hour"
	@echo "on a slow one; later runs reuse $(VENV)."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/coldopen demo --clip-pretrained $(CLIP_PRETRAINED)

# Everything, end to end (real servers, PostgreSQL, Milvus Lite, models): ~20 minutes on 2 cores.
test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tests only (tests/unit: no server, no database process): about a minute.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The GPU suite (benchmarks/gpu_suite.py) at tiny size on whatever device this is: CI runs it so the one
# command an H200 run needs cannot rot (about 3 minutes on 2 CPU cores).
gpu-suite-tiny: $(BIN)/.installed
	$(BIN)/python -m benchmarks.gpu_suite --size tiny --budget-s 900 --out $${TMPDIR:-/tmp}/coldopen-gpu-suite

# What CI checks before the tests: lint and import order (ruff), types (mypy; strict on the pure layers).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

serve: $(BIN)/.installed
	$(BIN)/coldopen serve --clip-pretrained $(CLIP_PRETRAINED)

# Regenerate the committed gRPC stubs after editing proto/ (tests fail while they are stale).
proto: $(BIN)/.installed
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. --pyi_out=. proto/coldopen/v1/coldopen.proto

samples: $(BIN)/.installed
	$(BIN)/python -m testkit.mediagen samples samples/

# Per-stage timings of the ingest pipeline on a 30-second clip (results: benchmarks/RESULTS.md).
bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.ingest --clip-pretrained $(CLIP_PRETRAINED)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
