# clustd — build, test and measure.
GO          ?= go
BIN         := $(CURDIR)/bin
STATICCHECK := $(BIN)/staticcheck
# Pinned so that a new machine checks the code exactly as CI does.
STATICCHECK_VERSION := v0.8.2
# What clustd --version prints: the tag or commit, -dirty with local changes.
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: package package-test all build test vet staticcheck sweep sim-soak bench bench-quick fuzz clean chaos vip-test bench-vip

all: build

## build: a static binary (no cgo, so no libc: 1.3 MB less resident per daemon).
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/clustd ./cmd/clustd

## package: dist/*.deb and dist/*.rpm (pinned nfpm): the static binary, the
## systemd units, the manual page, shell completions, the clustd user.
package:
	GO=$(GO) BINVERSION=$(VERSION) contrib/package/build.sh

## package-test: build the packages, install the .deb into a throwaway root
## (dpkg --root) and check the version, owners and modes.
package-test: package
	contrib/package/test.sh

## test: vet, staticcheck, every test with the race detector, then the full
## simulator seed sweep (without the race detector, which would make it 10x slower).
test: vet staticcheck
	$(GO) test -race -count=1 ./...
	$(MAKE) sweep

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## sweep: 500 seeds, 5 nodes, default fault mix, default profile for 3 simulated
## minutes and fast for 1 (SIM_SEEDS overrides the count), and a tenth as many
## with 3 roles per node; then every safety rule removed in turn, each of which
## must be caught (docs/safety-rules.md), and one removed with 3 roles.
sweep:
	SIM_SEEDS=$${SIM_SEEDS:-500} $(GO) test -count=1 -run 'TestSeedSweep|TestSeedSweepRoles|TestMutantsCaught|TestMutantsCaughtRoles' ./sim

## sim-soak: a far larger sweep, longer runs, both profiles (a tenth as many
## seeds with 3 roles per node).
sim-soak:
	SIM_SEEDS=$${SIM_SEEDS:-20000} SIM_SOAK=1 $(GO) test -count=1 -timeout 3h -run 'TestSeedSweep' -v ./sim

## bench: measure clustd as BENCHMARKS.md describes: failover after kill -9 and
## planned transfers on real daemons (3 and 5 nodes, both profiles, 30 trials
## each), the idle cost of a 5-node cluster over 60 s, the simulator's speed,
## and the Go micro-benchmarks of election and sim (-count 5). Prints a table
## and writes bench/results.json. About 8 minutes.
bench:
	$(GO) run ./bench/cmd/clustd-bench -out bench/results.json

## bench-quick: the same with 8 trials, a 15 s idle window and one benchmark
## run each, for a quick look; writes bench/results-quick.json.
bench-quick:
	$(GO) run ./bench/cmd/clustd-bench -quick -out bench/results-quick.json

## fuzz: a minute of each fuzz target.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 60s $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN)

## chaos: real clustd processes, each in a network namespace of its own (root;
## loopback without), under a seeded fault schedule, whole-node freezes included:
## 3 nodes with 3 roles (each role's drivers checked for overlaps), then 5
## nodes, then 3 on the fast profile, then the build without stickiness, which
## must be caught. CHAOS_DURATION (per cluster size, default 2m) and CHAOS_SEED
## adjust it; CHAOS_FLAGS=-q prints summaries only.
chaos:
	$(GO) run ./chaos/cmd/chaos $(CHAOS_FLAGS) --nodes 3 --roles 3
	$(GO) run ./chaos/cmd/chaos $(CHAOS_FLAGS) --nodes 5
	$(GO) run ./chaos/cmd/chaos $(CHAOS_FLAGS) --nodes 3 --profile fast
	$(GO) run ./chaos/cmd/chaos $(CHAOS_FLAGS) --nodes 3 --unsafe --duration 30s

## vip-test: the floating-address rig (root): three nodes and a client in network
## namespaces on one bridge, real clustd run + clustd driver vip, faults on the
## master (transfer, kill -9, SIGSTOP, isolation), a required --http check, and a
## leftover address. About 15 s; skips loudly without root.
vip-test:
	VIPNET=1 $(GO) test -count=1 -v ./vipnet/

## bench-vip: client-observed failover of a floating address on the vipnet rig
## (root, keepalived installed): clustd in both profiles, keepalived with 0.1 s
## and 1 s adverts, kill -9 / SIGSTOP / isolation / transfer, VIP_TRIALS each
## (default 20). Writes vipnet/results.json. About 25 minutes.
bench-vip:
	$(GO) run ./vipnet/cmd/vip-bench -trials $${VIP_TRIALS:-20} -out vipnet/results.json
