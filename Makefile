# roundtable — see README.md. The two commands a newcomer runs: make demo, make test.
GO       ?= go
BIN      := bin/roundtable
PKGS     := ./...
FUZZTIME ?= 5s

.PHONY: build test unit fuzz bench soak demo lint clean dist cross mutate gremlins

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

# Long fault runs with real processes: the leader SIGSTOPped for 90 s with
# default-length publishing through the survivors (the short variant runs
# in make test).
soak:
	ROUNDTABLE_SOAK=1 $(GO) test -count=1 -timeout 30m -run 'TestFrozenLeaderPublishing|TestPublishKilledAtEachStep' -v ./node/systemtest

# Mutation testing of the core packages with gremlins (docs/testing.md):
# one package at a time, one mutant at a time, that package's tests run
# with -short. Not part of make test: a full run takes hours on 2 cores.
# One package: make mutate/node/verify. Fewer files in it:
# make mutate/privacy MUTATE_FILES.privacy='accountant|validate'.
GREMLINS_VERSION := v0.6.0
GREMLINS = $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)/gremlins
MUTATE_PKGS ?= cluster/governance keyseal node/api node/store node/verify privacy cluster aggregate
MUTATE_OUT  ?= bin/mutate
# More gremlins flags, e.g. MUTATE_ARGS=--conditionals-negation=false to
# leave out the `==`/`!=` mutants (most of them; a negated check refuses
# honest input and is killed by any test that passes through it), which
# makes a large file's run about three times shorter.
MUTATE_ARGS ?=
# Per package, the files mutated (a regexp over names without .go; the
# default is every file), the tests run (a -run regexp; default all) and
# the tests skipped. In cluster only the state machine, and only the tests
# that drive it directly (an FSM over a temporary ledger, no raft, TLS or
# network): they cover fsm*.go (docs/testing.md) and take seconds, where
# the whole package takes minutes.
MUTATE_FILES.cluster  ?= fsm.*
MUTATE_RUN.cluster    ?= ^(TestFSM|TestAcceptedBudgetPublishes|TestEntriesBoundToConsortium|TestCheckpointOriginNamesConsortium|TestGovernance|TestDenyList|TestRestore|TestStateReleasesAndProofs|TestStateReservationAndSpend|TestLeafDataFromMatchesLeafData|TestVerifyCanonicalMatchesVerify)
MUTATE_SKIP.cluster   ?= -skip=^TestFSMUnderRaft$$
MUTATE_FILES.node/api ?= auth
MUTATE_TARGETS := $(addprefix mutate/,$(MUTATE_PKGS))
.PHONY: $(MUTATE_TARGETS)

mutate: $(MUTATE_TARGETS)

$(MUTATE_TARGETS): mutate/%: gremlins
	@mkdir -p $(MUTATE_OUT)
	@echo "== mutate $* (files: $(or $(MUTATE_FILES.$*),all))"
	@start=$$(date +%s); \
	excl=$$(cd $* && ls *.go | grep -v '_test\.go$$' | grep -Ev '^($(or $(MUTATE_FILES.$*),.*))\.go$$' | sed 's/.*/-E ^&$$/'); \
	GOFLAGS="$(GOFLAGS) -short -count=1 $(if $(MUTATE_RUN.$*),-run=$(MUTATE_RUN.$*)) $(MUTATE_SKIP.$*)" $(GREMLINS) unleash $(MUTATE_ARGS) -E / $$excl \
		-o $(MUTATE_OUT)/$(subst /,-,$*).json ./$* || exit 1; \
	echo "== mutate $*: $$(( $$(date +%s) - start )) s"

# Installs the pinned gremlins unless that version is already there.
gremlins:
	@$(GO) version -m $(GREMLINS) 2>/dev/null | grep -Eq 'mod[[:space:]]+github.com/go-gremlins/gremlins[[:space:]]+$(GREMLINS_VERSION)[[:space:]]' || \
		$(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)

demo: build
	./$(BIN) demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin dist

# Release builds: one static binary per platform with the version stamped
# (roundtable --version, /v1/health, backups), SHA256SUMS over everything,
# and the systemd unit. VERSION defaults to git describe; set it for a
# release: make dist VERSION=v1.2.0. docs/operator.md, "Install on a
# server", uses what this writes.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DIST_TARGETS := linux/amd64 linux/arm64 windows/amd64 darwin/arm64
DIST_LDFLAGS := -s -w -X roundtable/node.stamp=$(VERSION)
HOST := $(shell $(GO) env GOOS)-$(shell $(GO) env GOARCH)

dist:
	rm -rf dist && mkdir -p dist
	@set -e; for t in $(DIST_TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
	  out=dist/roundtable-$(VERSION)-$$os-$$arch$$ext; echo "  build $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(DIST_LDFLAGS)' -o $$out ./cmd/roundtable; \
	done
	cp packaging/roundtable.service dist/roundtable.service
	@bin=dist/roundtable-$(VERSION)-$(HOST); if [ -x $$bin ]; then \
	  v=$$($$bin --version); echo "  $$v"; \
	  case "$$v" in *" $(VERSION)") ;; *) echo "$$bin --version does not show $(VERSION)"; exit 1;; esac; fi
	cd dist && (sha256sum roundtable-* roundtable.service 2>/dev/null || shasum -a 256 roundtable-* roundtable.service) > SHA256SUMS
	@ls -l dist

# Cross-compiles every release target into a scratch directory, so that a
# platform-specific build break fails CI (.ci/run).
cross:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; set -e; for t in $(DIST_TARGETS); do \
	  echo "  cross-compile $$t"; \
	  CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -o $$tmp/roundtable ./cmd/roundtable; \
	done
