# bridge-ipam: build, test, demo, benchmark and install.
# `make test` and `make demo` install their own Debian packages (as root) on first use.

SWIFT          ?= swift
DESTDIR        ?=
BINDIR         ?= /opt/cni/bin
CONFDIR        ?= /etc/cni/net.d
RELEASE_BIN    := .build/release/bridge-ipam
RELEASE_BINS   := $(RELEASE_BIN) .build/release/bridge-ipam-agent

# Build: libmnl, libnftnl; libcurl and libyaml for the node agent; mmdebstrap for the Debian 11
# sysroot the release binaries link against. Tests, demo and bench: namespaces, ping, jq, the
# reference plugins, python3.
BUILD_DEPS     := libmnl-dev libnftnl-dev pkg-config libstdc++-12-dev gcc libcurl4-openssl-dev libyaml-dev \
                  mmdebstrap debian-archive-keyring
RUN_DEPS       := iproute2 iputils-ping jq containernetworking-plugins python3 procps nftables
# Real clients in the tests: libcni (built from Debian's sources with Go), containerd, and a CRI
# client (Python gRPC) driving containerd's CRI plugin as kubelet does, and podman (CNI backend).
# objdump (binutils) reads the glibc versions the installed plugin needs.
TEST_DEPS      := golang-go golang-github-appc-cni-dev containerd runc busybox-static iptables util-linux \
                  python3-grpcio python3-grpc-tools python3-yaml podman strace binutils
# The node agent's tests: a stand-in API server with a CA made by openssl, driven with curl and
# checked with kubectl (Debian's kubernetes-client when no kubectl is installed); promtool
# (Debian's prometheus) validates /metrics.
AGENT_TEST_DEPS := openssl curl prometheus
BENCH_DEPS     := gcc libc6-dev iptables iperf3 valgrind
# `make image`: podman builds the DaemonSet's image from files of Debian packages (mmdebstrap).
IMAGE_DEPS     := podman mmdebstrap

.PHONY: all build manifest image buildinfo sysroot static-libs hot-symbols deps lint format unit-test integration-test br-netfilter test fuzz demo demo-agents demo-overlay demo-dualstack demo-node bench install install-agent uninstall clean

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
# libstdc++ (which the Swift runtime needs), libgcc, libnftnl and (in the agent) libyaml are linked statically too: the
# dynamic loader otherwise resolves ~2000 libstdc++ symbols on every start, half of the plugin's
# user-space instructions (VERSION: 2.48M instructions -> 0.57M, ADD: 3.55M -> 1.63M, measured
# with callgrind). Debian ships libstdc++.a and libnftnl.a but no libmnl.a, so libmnl stays
# shared. The archives are reached through a directory holding only them (and the files that
# shape the link against the sysroot, below), searched first.
# --no-export-dynamic undoes the runtime's -export-dynamic: nothing looks our symbols up.
# Concrete generic types (an array of tuples, a dictionary of our own types) get metadata
# accessors that call the runtime directly instead of demangling a type name on first use: the
# demangler was 42% of an ADD's instructions (ADD 1.44M -> 1.06M, DEL 0.73M -> 0.52M).
# lld links the functions a pod event runs next to each other (build/hot-symbols.txt, made by
# `make hot-symbols`): fewer page faults and a smaller peak RSS (see scripts/hot-symbols.sh).
#
# `bridge-ipam --version` and `bridge-ipam-agent --version`: the git commit and the release's
# version (the file VERSION, the one source of it; the image's tag and deploy/'s manifest say the
# same, scripts/test-manifest.sh checks) go into a generated header that only
# Sources/CBuildInfo includes; a plain `swift build` says VERSION-dev. It is rewritten only when
# its content changes, and the include flag is constant, so a new commit recompiles one C file
# and relinks.
VERSION        ?= $(shell cat $(CURDIR)/VERSION)
BUILD_INFO_DIR := $(CURDIR)/.build/buildinfo
SWIFT_INFO     := -Xcc -I$(BUILD_INFO_DIR)
STATIC_LIBS    := $(CURDIR)/.build/static-libs
#
# Portable binaries: the release link uses a Debian 11 root (glibc 2.31) as its sysroot, so every
# glibc symbol binds to the oldest version that has it (hypotf@GLIBC_2.2.5, not the build
# machine's hypotf@GLIBC_2.35) and the plugin runs on any node with glibc 2.31 or later (Debian
# 11, Ubuntu 20.04, RHEL 9, Amazon Linux 2023) instead of 2.35 or later. The compiler still reads
# the build machine's headers; whatever they would need that glibc 2.31 lacks fails the link, it
# cannot slip through. libgcc comes from the sysroot's GCC 10 (GCC 12's unwinder calls
# _dl_find_object, glibc 2.35); libstdc++ stays the build machine's GCC 12 (the Swift runtime
# needs its newer symbols), and the one glibc 2.32 variable it reads is supplied by
# build/glibc-2.31-compat.c. The agent is linked the same way (it also needs libcurl 7.85 or
# later at run time, which its image has).
# Against glibc 2.31 the binary needs libpthread.so.0 and libdl.so.2 too (empty stubs on glibc
# 2.34 and later, but each is still opened and mapped: 9 system calls). Start-up is kept lean
# with two files in the static-libs directory: libm.so, a linker script that puts libc.so.6
# before libm.so.6, so libc is the first library ld.so searches for each of the ~280 symbols it
# binds at start instead of the fifth (the Swift Glibc module's autolinks otherwise order them
# libm, libpthread, libutil, libdl; 37,000 instructions per run), and an empty libutil.a: the
# same autolinks ask for libutil, which nothing uses (a use would fail the link), and glibc 2.31
# has no libutil in libc. ADD with all of this: README, "Layout".
# The sysroot is made once by mmdebstrap from Debian's mirror (scripts/debian-root.sh, ~200 MB).
SYSROOT        := $(CURDIR)/.build/debian11-sysroot
SYSROOT_PKGS   := libc6-dev,libgcc-10-dev,libmnl-dev,libcurl4-openssl-dev
GLIBC_COMPAT   := $(STATIC_LIBS)/glibc-2.31-compat.o
SWIFT_SYSROOT  := -Xswiftc -Xclang-linker -Xswiftc --sysroot=$(SYSROOT) -Xlinker $(GLIBC_COMPAT)
LINK_SHAPERS   := $(GLIBC_COMPAT) $(STATIC_LIBS)/libm.so $(STATIC_LIBS)/libutil.a
SWIFT_RELEASE  := -c release --static-swift-stdlib --disable-local-rpath -Xswiftc -Xclang-linker -Xswiftc -no-pie \
                  -Xlinker -L$(STATIC_LIBS) -Xswiftc -Xclang-linker -Xswiftc -static-libgcc -Xlinker --no-export-dynamic \
                  -Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors \
                  -Xswiftc -use-ld=lld -Xlinker --symbol-ordering-file=$(CURDIR)/build/hot-symbols.txt \
                  -Xlinker --no-warn-symbol-ordering \
                  $(SWIFT_WERROR) $(SWIFT_INFO) $(SWIFT_SYSROOT)

build: deps sysroot static-libs buildinfo
	$(SWIFT) build $(SWIFT_RELEASE)

sysroot:
	@sh scripts/debian-root.sh $(SYSROOT) bullseye $(SYSROOT_PKGS) --relative-links

# Profiles the plugin's verbs (callgrind, in namespaces) and rewrites build/hot-symbols.txt;
# the next build links with the new order.
hot-symbols: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) valgrind binutils"
	bash scripts/hot-symbols.sh
	rm -f $(RELEASE_BIN)  # SwiftPM does not see the list change: relink on the next build

static-libs: $(LINK_SHAPERS)
	@mkdir -p $(STATIC_LIBS)
	@ln -sf "$$(gcc -print-file-name=libstdc++.a)" $(STATIC_LIBS)/libstdc++.a
	@ln -sf "$$(pkg-config --variable=libdir libnftnl)/libnftnl.a" $(STATIC_LIBS)/libnftnl.a
	@ln -sf "$$(pkg-config --variable=libdir yaml-0.1)/libyaml.a" $(STATIC_LIBS)/libyaml.a
	@for a in $(STATIC_LIBS)/*.a; do [ -e "$$a" ] || { echo "missing static library: $$a"; exit 1; }; done

# The files that shape the link against the sysroot (see SYSROOT above). SwiftPM does not see
# them change: each rule removes the binaries so the next build relinks them.
$(GLIBC_COMPAT): build/glibc-2.31-compat.c
	@mkdir -p $(STATIC_LIBS)
	cc -O2 -Wall -Werror -c -o $@ $<
	@rm -f $(RELEASE_BINS)

# Rewritten only when its content changes (the sysroot's path is in it).
$(STATIC_LIBS)/libm.so: FORCE
	@mkdir -p $(STATIC_LIBS)
	@echo 'GROUP ( $(SYSROOT)/lib/x86_64-linux-gnu/libc.so.6 $(SYSROOT)/lib/x86_64-linux-gnu/libm.so.6 )' >$@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || { mv $@.tmp $@ && rm -f $(RELEASE_BINS); }

$(STATIC_LIBS)/libutil.a:
	@mkdir -p $(STATIC_LIBS)
	@rm -f $@ && ar rc $@
	@rm -f $(RELEASE_BINS)

FORCE:

unit-test: deps buildinfo
	$(SWIFT) test $(SWIFT_WERROR) $(SWIFT_INFO)

buildinfo:
	@mkdir -p $(BUILD_INFO_DIR)
	@commit=$$(git -C $(CURDIR) rev-parse --short=7 HEAD 2>/dev/null) && \
	  { git -C $(CURDIR) diff --quiet HEAD -- 2>/dev/null || commit=$$commit-dirty; }; \
	{ echo '// Generated by make: the build'"'"'s version (see Sources/CBuildInfo/build_info.c).'; \
	  [ -z "$(VERSION)" ] || echo '#define BRIDGE_IPAM_VERSION "$(VERSION)"'; \
	  echo "#define BRIDGE_IPAM_GIT_COMMIT \"$$commit\""; } > $(BUILD_INFO_DIR)/bridge_ipam_build.h.tmp
	@cmp -s $(BUILD_INFO_DIR)/bridge_ipam_build.h.tmp $(BUILD_INFO_DIR)/bridge_ipam_build.h \
	  && rm $(BUILD_INFO_DIR)/bridge_ipam_build.h.tmp \
	  || mv $(BUILD_INFO_DIR)/bridge_ipam_build.h.tmp $(BUILD_INFO_DIR)/bridge_ipam_build.h

# The DaemonSet suite (scripts/test-daemonset.sh) imports `make image`'s archive into its nodes.
integration-test: build br-netfilter image
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(TEST_DEPS) $(AGENT_TEST_DEPS)"
	@command -v kubectl >/dev/null || $(MAKE) --no-print-directory deps BUILD_DEPS=kubernetes-client
	bash scripts/test-integration.sh

# The kernel's bridge netfilter, which a node of this pod network needs (README "Services"): the
# agent is not ready and STATUS fails without it, and the Service tests need it. A fresh machine
# may not have loaded the module; this loads it, as a node's provisioning does. New network
# namespaces start with the bridge-nf-call sysctls at 1; test-services sets its nodes' to 0.
br-netfilter:
	@[ -d /proc/sys/net/bridge ] || { echo "loading br_netfilter"; modprobe br_netfilter; }

test: unit-test integration-test

# deploy/bridge-ipam.yaml's ConfigMap and image tag, from conf/10-bridge-ipam.conflist and VERSION
# (scripts/test-manifest.sh fails when they differ).
manifest:
	/usr/bin/python3 scripts/manifest.py write

# The DaemonSet's image, tagged localhost/bridge-ipam:VERSION and :latest, and
# .build/image/bridge-ipam.tar for `ctr -n k8s.io images import` (scripts/make-image.sh).
image: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(IMAGE_DEPS)"
	bash scripts/make-image.sh

# The toolchain's formatter, with the repository's .swift-format: `make format` rewrites the tree,
# `make lint` (run by CI) fails on any difference.
SWIFT_SOURCES  := Sources Tests Package.swift
lint:
	$(SWIFT) format lint --strict --recursive $(SWIFT_SOURCES)

format:
	$(SWIFT) format format --in-place --recursive $(SWIFT_SOURCES)

# The reliability suite with a larger fuzz and more kills than `make test` runs (a few minutes).
fuzz: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(TEST_DEPS)"
	FUZZ_CASES=$${FUZZ_CASES:-3000} KILLS=$${KILLS:-200} SEED=$${SEED:-9} bash scripts/test-reliability.sh

# The cluster with routes from `routes sync`, then the same converged by node agents.
demo: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(AGENT_TEST_DEPS)"
	bash scripts/demo.sh
	bash scripts/demo-agents.sh
	bash scripts/demo-overlay.sh

# Agents converging a cluster as nodes join, change and leave (a stand-in API server).
demo-agents: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(AGENT_TEST_DEPS)"
	bash scripts/demo-agents.sh

# Nodes on two subnets behind a router: direct routes within a subnet, VXLAN across.
demo-overlay: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(AGENT_TEST_DEPS)"
	bash scripts/demo-overlay.sh

# The same cluster with IPv4 and IPv6 on every node and pod (routes of both families, both matrices).
demo-dualstack: build
	DUALSTACK=1 bash scripts/demo.sh

# A single node with three pods (the plugin alone, without routes between nodes).
demo-node: build
	bash scripts/demo-node.sh

bench: build
	@$(MAKE) --no-print-directory deps BUILD_DEPS="$(BUILD_DEPS) $(BENCH_DEPS) $(AGENT_TEST_DEPS)"
	bash scripts/bench.sh
	bash scripts/bench-netpol.sh
	bash scripts/bench-overlay.sh
	bash scripts/bench-agent.sh

# Lays down exactly two files, then says what the node still needs (its pod subnet, portmap);
# uninstall removes exactly those two files and no directory.
INSTALLED      := $(DESTDIR)$(BINDIR)/bridge-ipam $(DESTDIR)$(CONFDIR)/10-bridge-ipam.conflist

install: build
	@install -D -m 0755 $(RELEASE_BIN) $(DESTDIR)$(BINDIR)/bridge-ipam
	@install -D -m 0644 conf/10-bridge-ipam.conflist $(DESTDIR)$(CONFDIR)/10-bridge-ipam.conflist
	@sh scripts/install-report.sh "$(DESTDIR)" "$(BINDIR)" "$(CONFDIR)"

uninstall:
	@for f in $(INSTALLED); do if [ -e "$$f" ]; then rm -f "$$f" && echo "removed $$f"; fi; done

# The node agent, for running it outside a DaemonSet (deploy/ is the usual way).
install-agent: build
	install -D -m 0755 .build/release/bridge-ipam-agent $(DESTDIR)/usr/local/bin/bridge-ipam-agent

clean:
	rm -rf .build
