# session_gate: `make test` installs what the tests need (chromium,
# redis-server) where it is missing, then runs every test against real Caddy,
# Redis and Chromium. `make demo` runs the demo site of Caddyfile.example;
# `make xcaddy-check` builds Caddy with xcaddy as xcaddy.md says.

GO ?= go

.PHONY: test deps vet demo xcaddy-check bench benchgo fuzz soak soak-results

# Every package under the race detector; the fuzz targets' seed corpora run
# as ordinary tests.
test: deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

deps:
	./scripts/test-deps.sh

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

demo:
	$(GO) run ./cmd/caddy run --config Caddyfile.example

# xcaddy.md's shell blocks as printed, in an empty directory, this checkout
# standing in for the repository's address; then the Caddy they built must
# list the module and validate Caddyfile.example. A first build takes minutes.
xcaddy-check:
	./scripts/xcaddy-check.sh

# Go benchmarks of the verifier, the cache and the handler.
benchgo:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Gated vs ungated Caddy under wrk, per algorithm and for the interstitial.
bench:
	./scripts/test-deps.sh --bench
	./bench/run.sh

# Each native fuzz target for FUZZTIME, one after another (nice: the machine
# is shared). New interesting inputs land in the build cache's corpus; a
# failure is written to the package's testdata/fuzz/<target>/.
FUZZTIME ?= 5m
FUZZ_TARGETS = \
	.:FuzzSafeReturnPath \
	.:FuzzStartSession \
	.:FuzzParseCaddyfile \
	.:FuzzPathReadings \
	./session:FuzzVerify \
	./session:FuzzClaimsReader \
	./refresh:FuzzParseRefresh \
	./refresh:FuzzBoltRecord \
	./interstitial:FuzzCaptureForm

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$pkg $$name ($(FUZZTIME))"; \
		nice -n 10 $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Load-and-fault soak (bench/soak): simulated people against a real Caddy,
# every answer checked against the contract. One run, flags in SOAK, e.g.
#   make soak SOAK="-store redis -fault redis-restart"
soak: deps
	$(GO) run ./bench/soak $(SOAK)

# The runs quoted in bench/README.md, each saved to bench/soak/results/.
SOAK_RUNS ?= bolt:none bolt:reload bolt:jwks-down redis:none redis:redis-restart redis:reload
soak-results: deps
	@mkdir -p bench/soak/results
	$(GO) build -o bench/soak/results/.caddy ./cmd/caddy
	@rc=0; for r in $(SOAK_RUNS); do store=$${r%%:*}; fault=$${r##*:}; \
		$(GO) run ./bench/soak -caddy bench/soak/results/.caddy -store $$store -fault $$fault $(SOAK) \
			-out bench/soak/results/$$store-$$fault.txt || rc=1; \
	done; rm -f bench/soak/results/.caddy; exit $$rc
