# roundtable — see README.md. The two commands a newcomer runs: make demo, make test.
GO       ?= go
BIN      := bin/roundtable
PKGS     := ./...
FUZZTIME ?= 5s

.PHONY: build test unit fuzz bench demo lint clean

build:
	$(GO) build -o $(BIN) ./cmd/roundtable

# The whole suite: unit, property, evidence, system (real processes) and
# browser tests, then every fuzz target briefly.
test: lint unit fuzz

unit:
	$(GO) test -count=1 -timeout 20m $(PKGS)

# The parser targets (no store) run thousands of inputs a second; FuzzImport
# runs the store-level all-or-nothing property on far fewer. Minimising a
# new input is capped so that a large one does not stall the run.
FUZZMIN ?= 2s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzCSV$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./node/ingest
	$(GO) test -run '^$$' -fuzz '^FuzzCTDC$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./node/ingest
	$(GO) test -run '^$$' -fuzz '^FuzzJSONL$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./node/ingest
	$(GO) test -run '^$$' -fuzz '^FuzzImport$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./node/ingest

# Benchmarks with targets (import 1M, release 1M from the encrypted store,
# cluster throughput small and whole-catalog, restart with production
# timeouts, a ledger of 100,000 whole-catalog releases: listing, RSS,
# verify, dashboard; series). Each prints its figure and, where the target
# is a ratio, the baseline from the same run. The 100,000-release ones
# build their ledger first and take many minutes.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./node/ingest ./aggregate ./privacy ./node/store
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 120m ./cluster
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 90m ./node
	$(GO) test -run '^$$' -bench . -timeout 30m ./node/api

demo: build
	./$(BIN) demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
