# ferrymq: the two commands a newcomer needs are `make run` and `make test`.
# Both install what they need themselves (Rust crates via cargo, a Python venv with the
# client libraries, Debian packages such as kcat) so they work on a fresh machine.

CARGO   ?= cargo
PYTHON  ?= python3
VENV    := .venv
PYTEST  := $(VENV)/bin/pytest
ARGS    ?=
export FERRYMQ_BIN ?= $(CURDIR)/target/debug/ferrymq

.PHONY: run test test-rust test-python lint bench fuzz docker deps venv system-deps clean

## run: build and start the broker with the embedded defaults (pass flags with ARGS="...")
run:
	$(CARGO) run --release --bin ferrymq -- $(ARGS)

## test: the whole suite: Rust unit/property/crash tests, then real clients against the binary
test: deps test-rust test-python

test-rust:
	$(CARGO) build --bin ferrymq
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

test-python: deps
	$(CARGO) build --bin ferrymq
	$(PYTEST) tests

## lint: formatting and clippy exactly as CI and reviewers expect them
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: benchmarks; results and the commands that produced them go to docs/benchmarks.md
bench:
	$(CARGO) bench -p ferrymq-bench

fuzz:
	scripts/fuzz.sh

docker:
	docker build -f docker/Dockerfile -t ferrymq:latest .

deps: venv system-deps

venv: $(VENV)/.installed

$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

system-deps:
	scripts/apt-install kcat rabbitmq-server

clean:
	$(CARGO) clean
	rm -rf $(VENV)
