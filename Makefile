# The two commands of the README:
#   make example   set up .venv and launch the example job (1 server + 2 client processes)
#   make test      set up .venv and run the whole test suite (what CI runs)
#   make test-fast lint, then the tests not marked slow, on every core (about 1.5 min on 2 cores)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch installed before the project, and the index it comes from (empty: pip's own).
#   make TORCH_INDEX=https://download.pytorch.org/whl/cpu      the CPU build from PyTorch's index
#   make TORCH_INDEX=https://download.pytorch.org/whl/cu128    a CUDA 12.8 build
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: venv example test test-fast lint bench proto docs

$(BIN)/flconfig: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned and from the index chosen above, so that the project's range
	# (torch>=2.6) is met by it and pip does not pick another build.
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	# The ray extra too: the tests run `flconfig launch --backend ray` on a real Ray cluster.
	$(BIN)/pip install --quiet -e ".[run,test,ray]"
	touch $(BIN)/flconfig

venv: $(BIN)/flconfig

example: venv
	$(BIN)/flconfig launch configs/tensorboard-streaming --workspace workspace

test: venv lint
	$(BIN)/python -m pytest -q

test-fast: venv lint
	$(BIN)/python -m pytest -q -m "not slow" -n auto

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The documentation site into ./site (warnings are errors); `mkdocs serve` to browse it.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: venv
	$(BIN)/python benchmarks/run_all.py

# Regenerate the wire contracts' Python modules from flconfig/transport/flconfig.proto and
# flconfig/deploy/deploy.proto (grpcio-tools is in the test extra; tests/transport/test_transport.py
# and tests/deploy/test_deploy_units.py check they match).
proto: venv
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
		flconfig/transport/flconfig.proto
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
		flconfig/deploy/deploy.proto
