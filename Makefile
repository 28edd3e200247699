# Portcullis: the front door.  `make image` builds the appliance, `make test` tests it.
SHELL       := /bin/sh
PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
PYTEST_ARGS ?=

# Debian packages the test suite drives for real (see tests/support/).
TEST_PACKAGES := postfix swaks clamav-daemon nftables libnftables1 dnsmasq-base \
                 openssh-server openssh-client iproute2 nmap procps psmisc netbase \
                 chromium chromium-driver sqlite3 systemd clamav zip 7zip genisoimage gcab qpdf \
                 clamav-testfiles tnef arj lhasa cpio sharutils macutils libarchive-tools \
                 libzbar0 qrencode \
                 python3-venv python3-pip-whl qemu-system-x86 qemu-utils ovmf mtools e2fsprogs

# The peers `make bench` compares against (not needed by `make test`).
BENCH_PACKAGES := spamassassin spamd rspamd redis-server

.PHONY: setup venv packages test lint run bench eval soak image vm flash lock clean

setup: packages venv

packages:
	@scripts/ensure-packages $(TEST_PACKAGES)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || scripts/ensure-packages python3 python3-venv
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || scripts/ensure-packages python3-venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

test: setup
	$(BIN)/ruff check app update-server tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check app update-server tests bench

run: venv
	scripts/run-dev

# Every figure in one run: table on stdout, bench/results/<timestamp>.json and .svg.
bench: setup
	@scripts/ensure-packages $(BENCH_PACKAGES)
	$(BIN)/python -m bench.run

# The reliability suite at ten times the counts of its `make test` form (longer spikes,
# more hypothesis examples, longer atheris runs), then the unit tests; every property test
# draws fresh random examples here, where `make test` repeats the same ones. A test's
# time limit (pytest-timeout, 600 s in make test) grows with the counts: a fuzzer at scale
# 30 on a busy machine outran the fixed one and was reported as a hang.
RELIABILITY_SCALE ?= 10
SOAK_TIMEOUT = $(shell echo $$((600 * $(RELIABILITY_SCALE))))
soak: setup
	RELIABILITY_SCALE=$(RELIABILITY_SCALE) $(BIN)/python -m pytest -m reliability --timeout=$(SOAK_TIMEOUT) $(PYTEST_ARGS)
	RELIABILITY_SCALE=$(RELIABILITY_SCALE) $(BIN)/python -m pytest tests/unit --timeout=$(SOAK_TIMEOUT) $(PYTEST_ARGS)

# Detection quality on the shared corpus with its fixed split (see its README).
CORPUS ?= ../shared/corpus/spamassassin
EVAL_ARGS ?=
eval: venv
	@test -d $(CORPUS)/split || { echo "make eval: no corpus at $(CORPUS) (set CORPUS=...)"; exit 1; }
	$(BIN)/portcullis eval --train-ham $(CORPUS)/split/train_ham.txt \
	    --train-spam $(CORPUS)/split/train_spam.txt --test-ham $(CORPUS)/split/test_ham.txt \
	    --test-spam $(CORPUS)/split/test_spam.txt $(EVAL_ARGS)

# The appliance image (image/, overlay/, roles/): runs as root with the host's own Debian
# Python, before any venv exists.  Caches live in /var/cache/portcullis-image.
HOST_PYTHON := /usr/bin/python3
IMAGE_TOOL  := PYTHONPATH=$(CURDIR)/image $(HOST_PYTHON) -m builder
VM_ARGS     ?=
FLASH_ARGS  ?=                # --yes: no typed confirmation (scripted installs)
DEV         ?=

image:
	@test -x $(HOST_PYTHON) || scripts/ensure-packages python3
	$(IMAGE_TOOL) build

vm:
	@test -x $(HOST_PYTHON) || scripts/ensure-packages python3
	$(IMAGE_TOOL) vm $(VM_ARGS)

flash:
	@test -x $(HOST_PYTHON) || scripts/ensure-packages python3
	$(IMAGE_TOOL) flash $(DEV) $(FLASH_ARGS)

# requirements.lock: the appliance's runtime dependencies (transitively) at the dev venv's
# versions, each with the sha256 of the file pip takes from its configured index for
# Debian 12 / CPython 3.11 / x86-64.  `make image` fetches exactly these (--require-hashes).
# image/build-tools.lock: the same for the build venv of `make image` (Ansible and
# pyproject.toml's build requirements, wheels only).  Run it after changing pyproject.toml's
# dependencies (and `make venv`) or builder/paths.py's ANSIBLE_VERSION, commit the result.
lock: venv
	PYTHONPATH=$(CURDIR)/image $(BIN)/python -m builder lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
