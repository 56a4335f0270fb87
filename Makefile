# The single entry point: make run, make test, make check, make bench-ingest|bench-sync|bench-faces.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ./var
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast check fmt lock bench-ingest bench-sync bench-faces bench-accuracy image-check clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/shutterbox up --data $(DATA)

test: $(STAMP)
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Regenerate the locks after changing dependencies in pyproject.toml (needs uv): the development
# lock (tests, tools) and the box's own (what the SD-card image installs).
lock:
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes -o requirements.lock
	uv pip compile pyproject.toml --universal --python-version 3.11 \
		--generate-hashes -o requirements-box.lock

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-sync: $(STAMP)
	$(BIN)/python bench/sync.py

bench-faces: $(STAMP)
	$(BIN)/python bench/faces.py

bench-accuracy: $(STAMP)
	$(BIN)/python bench/faces_accuracy.py

# Build the box's root filesystem for this machine's architecture with the image recipe and
# check it from inside (chroot). Needs root and mmdebstrap; takes a few minutes.
ROOTFS ?= /tmp/shutterbox-rootfs
image-check:
	image-build/build-rootfs.sh $(ROOTFS)
	image-build/check-rootfs.sh $(ROOTFS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
