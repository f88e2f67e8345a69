# clustd — build, test and measure.
GO          ?= go
BIN         := $(CURDIR)/bin
STATICCHECK := $(BIN)/staticcheck
# Pinned so that a new machine checks the code exactly as CI does.
STATICCHECK_VERSION := v0.8.2

.PHONY: all build test vet staticcheck sweep sim-soak bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/clustd ./cmd/clustd

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

## sweep: 500 seeds, 5 nodes, default fault mix (SIM_SEEDS overrides the count).
sweep:
	SIM_SEEDS=$${SIM_SEEDS:-500} $(GO) test -count=1 -run 'TestSeedSweep' ./sim

## sim-soak: a far larger sweep, longer runs, both profiles.
sim-soak:
	SIM_SEEDS=$${SIM_SEEDS:-20000} SIM_SOAK=1 $(GO) test -count=1 -timeout 3h -run 'TestSeedSweep' -v ./sim

## bench: Go benchmarks of the core and the simulator.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./election ./sim

## fuzz: a minute of each fuzz target.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 60s $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN)
