# session_gate: `make test` installs what the tests need (chromium,
# redis-server) where it is missing, then runs every test against real Caddy,
# Redis and Chromium. `make demo` runs the demo site of Caddyfile.example.

GO ?= go

.PHONY: test deps vet demo bench benchgo

test: deps vet
	$(GO) test -count=1 -timeout 20m ./...

deps:
	./scripts/test-deps.sh

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

demo:
	$(GO) run ./cmd/caddy run --config Caddyfile.example

# Go benchmarks of the verifier, the cache and the handler.
benchgo:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Gated vs ungated Caddy under wrk, per algorithm and for the interstitial.
bench:
	./scripts/test-deps.sh --bench
	./bench/run.sh
