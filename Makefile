# bridge-ipam: build, test, demo, benchmark and install.
# `make test` and `make demo` install their own Debian packages (as root) on first use.

SWIFT          ?= swift
DESTDIR        ?=
BINDIR         ?= /opt/cni/bin
CONFDIR        ?= /etc/cni/net.d
RELEASE_BIN    := .build/release/bridge-ipam

# Build: libmnl. Tests, demo and bench: namespaces, ping, jq, the reference plugins, python3.
BUILD_DEPS     := libmnl-dev libnftnl-dev pkg-config
RUN_DEPS       := iproute2 iputils-ping jq containernetworking-plugins python3 procps nftables
# Real clients in the tests: libcni (built from Debian's sources with Go) and containerd.
TEST_DEPS      := golang-go golang-github-appc-cni-dev containerd runc busybox-static iptables util-linux strace
BENCH_DEPS     := gcc libc6-dev iptables

.PHONY: all build deps unit-test integration-test test fuzz demo demo-node bench install uninstall clean

all: build

deps:
	@missing=$$(for p in $(BUILD_DEPS) $(RUN_DEPS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Release builds link the Swift runtime statically, so the binary runs on nodes without Swift
# (it needs only glibc and libmnl0). Every pod event starts the process anew, so start-up is
# trimmed: no PIE (ld.so would apply ~22,000 relative relocations, dirtying ~60 pages, about
# 0.2 ms per run here) and no $ORIGIN rpath (each library would be searched for in a dozen
# directories beside the binary first).
# Warnings are errors in every build (Swift and the C shim), so a warning cannot land unseen.
SWIFT_WERROR   := -Xswiftc -warnings-as-errors -Xcc -Werror
SWIFT_RELEASE  := -c release --static-swift-stdlib --disable-local-rpath -Xswiftc -Xclang-linker -Xswiftc -no-pie \
                  $(SWIFT_WERROR)

build: deps
	$(SWIFT) build $(SWIFT_RELEASE)

unit-test: deps
	$(SWIFT) test $(SWIFT_WERROR)

integration-test: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(TEST_DEPS)"
	bash scripts/test-integration.sh

test: unit-test integration-test

# The reliability suite with a larger fuzz and more kills than `make test` runs (a few minutes).
fuzz: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(TEST_DEPS)"
	FUZZ_CASES=$${FUZZ_CASES:-3000} KILLS=$${KILLS:-200} SEED=$${SEED:-9} bash scripts/test-reliability.sh

demo: build
	bash scripts/demo.sh

# A single node with three pods (the plugin alone, without routes between nodes).
demo-node: build
	bash scripts/demo-node.sh

bench: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(BENCH_DEPS)"
	bash scripts/bench.sh

install: build
	install -D -m 0755 $(RELEASE_BIN) $(DESTDIR)$(BINDIR)/bridge-ipam
	install -D -m 0644 conf/10-bridge-ipam.conflist $(DESTDIR)$(CONFDIR)/10-bridge-ipam.conflist

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/bridge-ipam $(DESTDIR)$(CONFDIR)/10-bridge-ipam.conflist

clean:
	rm -rf .build
