# ferrymq: the two commands a newcomer needs are `make run` and `make test`.
# Both install what they need themselves (Rust crates via cargo, a Python venv with the
# client libraries, Debian packages such as kcat) so they work on a fresh machine.

CARGO   ?= cargo
PYTHON  ?= python3
VENV    := .venv
PYTEST  := $(VENV)/bin/pytest
ARGS    ?=
# The tests' variables have a prefix of their own: FERRYMQ_* is the broker's configuration.
export TEST_FERRYMQ_BIN ?= $(CURDIR)/target/debug/ferrymq

BENCH_ARGS ?=

.PHONY: run test test-rust test-python lint bench bench-log bench-profile test-perf fuzz soak docker deps venv system-deps clean

## run: build and start the broker with the embedded defaults (pass flags with ARGS="...")
run:
	$(CARGO) run --release --bin ferrymq -- $(ARGS)

## test: the whole suite: Rust unit/property/crash tests, then real clients against the binary
test: deps test-rust test-python

# ferrymq-perf (benches/perf) is left out: its rdkafka dependency builds the bundled librdkafka
# from C (minutes on a cold cache). `make lint` still checks it; `make test-perf` tests it.
test-rust:
	$(CARGO) build --bin ferrymq
	$(CARGO) test --workspace --exclude ferrymq-perf --all-targets
	$(CARGO) test --workspace --exclude ferrymq-perf --doc

test-python: deps
	$(CARGO) build --bin ferrymq
	$(PYTEST) tests

## lint: formatting and clippy exactly as CI and reviewers expect them
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: ferrymq beside RabbitMQ (AMQP A1-A5, Kafka K1-K3, memory, startup) with ferrymq-perf,
## then the management API and metrics with 10,000 queues (M1, M2);
## rewrites the generated sections of docs/benchmarks.md (options: BENCH_ARGS="--help";
## QUICK=1 for a short run of a few minutes)
QUICK ?=
bench: venv
	scripts/apt-install rabbitmq-server
	scripts/apt-install libssl-dev openssl  # librdkafka's TLS (ferrymq-perf); the bench's throwaway CA
	$(CARGO) build --release -p ferrymq -p ferrymq-perf
	$(VENV)/bin/python scripts/bench.py $(if $(filter-out 0,$(QUICK)),--quick) $(BENCH_ARGS)
	$(VENV)/bin/python scripts/bench_management.py $(if $(filter-out 0,$(QUICK)),--quick)

## bench-log: the commit log's criterion benchmarks ("Commit log" in docs/benchmarks.md)
bench-log:
	$(CARGO) bench -p ferrymq-bench

## bench-profile: perf profiles of ferrymq under A1, A2 and K1 (target/bench-profile/)
bench-profile:
	scripts/apt-install linux-perf
	$(CARGO) build --release -p ferrymq -p ferrymq-perf
	scripts/bench-profile.sh

## test-perf: ferrymq-perf's tests (against an in-process ferrymq)
test-perf:
	$(CARGO) test -p ferrymq-perf

fuzz:
	scripts/fuzz.sh

## soak: 30 minutes of mixed AMQP and Kafka load with clients and the broker killed at random,
## then a check that nothing confirmed was lost (not part of `make test`; SOAK_ARGS="--help")
SOAK_ARGS ?=
soak: venv
	$(CARGO) build --release --bin ferrymq
	$(VENV)/bin/python scripts/soak.py $(SOAK_ARGS)

## docker: the ferrymq:latest image, built with nothing pulled (FROM scratch; see docker/Dockerfile)
docker:
	$(CARGO) build --release --bin ferrymq
	scripts/docker-image.sh target/release/ferrymq ferrymq:latest

deps: venv system-deps

venv: $(VENV)/.installed

$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# install-test-tools: promtool, chromium + chromedriver (Debian) and rabbitmqadmin (crates.io,
# built once into ~/.cache/ferrymq-tools, outside the clone) for the management-API tests.
system-deps:
	scripts/apt-install kcat rabbitmq-server amqp-tools
	scripts/install-test-tools

clean:
	$(CARGO) clean
	rm -rf $(VENV)
