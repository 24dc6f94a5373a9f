# The two commands a new user needs:
#   make run   - build (release) and start Aside with conf/aside.toml in front of the demo origin
#   make test  - everything CI checks: fmt, clippy, every config in conf/, the whole test suite
CARGO ?= cargo
ASIDE_RELEASE := target/release/aside
ASIDE_DEBUG := target/debug/aside
CONFIGS := $(wildcard conf/*.toml conf/examples/*.toml)

.PHONY: run test prereqs check-config bench bench-smoke soak

prereqs:
	@scripts/prereqs.sh

run: prereqs
	$(CARGO) build --release -p aside-proxy --bin aside
	@mkdir -p data
	@$(ASIDE_RELEASE) demo-origin --listen 127.0.0.1:8081 & origin=$$!; \
	  trap 'kill $$origin 2>/dev/null' EXIT INT TERM; \
	  $(ASIDE_RELEASE) --config conf/aside.toml

check-config:
	$(CARGO) build -p aside-proxy --bin aside
	@for f in $(CONFIGS); do $(ASIDE_DEBUG) --check-config $$f || exit 1; done

# `cargo test --no-run` also builds target/debug/aside (the proxy package has
# integration tests), with the same features as the tests: the config check and
# the bench smoke run reuse that binary instead of compiling pingora once more.
test:
	@scripts/prereqs.sh --ui
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --no-run
	@for f in $(CONFIGS); do echo "check-config $$f"; $(ASIDE_DEBUG) --check-config $$f || exit 1; done
	$(CARGO) test --workspace
	scripts/schemathesis.sh $(ASIDE_DEBUG)
	ASIDE_BIN=$(CURDIR)/$(ASIDE_DEBUG) bench/run.sh --smoke

bench: prereqs
	bench/run.sh

bench-smoke: prereqs
	bench/run.sh --smoke

# 10-minute soak (issue 11; not part of `make test`): hits, misses and KV writes at 80%
# of the measured peak plus slow and idle clients; fails on any error, corrupted body
# or RSS growth. ASIDE_BIN=path skips the build; SOAK_ARGS="--seconds 60" for a short run.
soak: prereqs
	@if [ -z "$(ASIDE_BIN)" ]; then $(CARGO) build --release -p aside-proxy --bin aside; fi
	python3 bench/soak.py --aside "$(or $(ASIDE_BIN),$(CURDIR)/$(ASIDE_RELEASE))" $(SOAK_ARGS)
