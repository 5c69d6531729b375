# Two entry points; each sets up .venv itself and is idempotent.
#   make run   - install, open the chat over seeds/ (offline, default model): the keyword index is
#                built in seconds and answers at once; vectors follow in the background
#   make test  - install with test extras, then run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TEST_STAMP := $(VENV)/.test-installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test index setup test-setup clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# The test LLM server's llama.cpp is built for any x86-64-v3 CPU, not -march=native: a VM can
# report AMX and still fault on its first tile instruction. --no-cache-dir: never a wheel built
# natively on another machine; reinstalled, so an earlier native build is replaced.
LLAMA := $(shell grep -o '"llama-cpp-python[^"]*"' pyproject.toml)
LLAMA_CMAKE := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)

$(TEST_STAMP): $(BIN)/python pyproject.toml
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/pip install --quiet --no-cache-dir --force-reinstall --no-deps $(LLAMA)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

index: setup
	$(BIN)/govrag index seeds

run: setup
	$(BIN)/govrag serve

test-setup: $(TEST_STAMP)

test: test-setup
	sh scripts/install_browser.sh
	$(BIN)/python -m pytest -q

clean:  # the index and the embedding cache; documents added from the chat (.govrag/documents) stay
	rm -rf .govrag/index .govrag/cache
