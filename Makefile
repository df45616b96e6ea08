# Palyra for Go. `make test` is what CI runs; it installs what a fresh Debian
# machine lacks first.

GO        ?= go
FUZZTIME  ?= 1m
BENCHTIME ?= 1s
# Which benchmarks make bench runs (a go test -bench pattern).
BENCH     ?= .
# The benchmarks that time how the node lives through faults (a gateway
# vanishing, a sleep, UDP blocked, floods): each run waits out real
# timeouts, so they take minutes; make bench-faults runs them, and make
# bench leaves them out. Each timing is of five runs whatever the
# benchtime (and -benchtime Nx would have go test run it all once more
# first, with b.N = 1); each flood is one.
FAULT_BENCH ?= ConnectUDPBlocked|NoticeDeadGateway|PathReturns|WakeToConnected|NetworkChangeToConnected|Flood
# What make bench then has `palyra bench` measure (its flags; see
# palyra bench --help): a short run, about a minute and a half here.
PALYRA_BENCH ?= --phases latency,throughput,grpc,idle --nodes 200 --reps 3 --calls 2000 --window 2s --idle-window 5s

# System packages, by purpose (Debian names).
TEST_PACKAGES  := bash-completion dbus dbus-x11 gnome-keyring libsecret-tools xvfb xclip xsel x11-apps x11-xserver-utils iproute2 nftables util-linux systemd postgresql
PROTO_PACKAGES := protobuf-compiler
# The desktop app (cgo, OpenGL), and its tests under Xvfb with a real tray
# host (gtk-sni-tray-standalone) and notification daemon (dunst);
# desktop-file-validate checks the autostart entry.
GUI_PACKAGES      := gcc pkg-config libgl1-mesa-dev xorg-dev
GUI_TEST_PACKAGES := xvfb xauth imagemagick xdotool haskell-gtk-sni-tray-utils dunst desktop-file-utils

# Pinned code generators, installed into the repo's own bin dir.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
# The Fyne packaging tool (make package).
FYNE_TOOL          := fyne.io/tools/cmd/fyne@v1.7.4
TOOLS_BIN     := $(CURDIR)/.bin

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING := true

# ensure_packages installs the Debian packages in $(1) that are missing, and
# only those; elsewhere it names them and stops.
define ensure_packages
	@missing=""; \
	if command -v dpkg-query >/dev/null 2>&1; then \
		for p in $(1); do \
			dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
		done; \
	else \
		echo "not a Debian system: make sure these (or your system's equivalents) are installed: $(1)"; \
	fi; \
	if [ -n "$$missing" ]; then \
		echo "installing missing packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null || \
		{ echo "could not install:$$missing"; exit 1; }; \
	fi
endef

.PHONY: man all build test test-deps vet cross cross-deps test-windows fuzz bench bench-faults proto proto-deps clean help gui-deps desktop run package screenshots

all: build

help:
	@echo "make test    install test dependencies, vet, run every test with -race"
	@echo "make build   build everything (cgo-free packages with CGO_ENABLED=0)"
	@echo "make cross   build the command line for Linux, Windows and macOS, and type-check the code and tests for the last two"
	@echo "make test-windows  the Windows smoke tests, under Wine"
	@echo "make fuzz    run every fuzz target for FUZZTIME (default $(FUZZTIME)) each"
	@echo "make bench   run the Go benchmarks (BENCH=pattern for some of them), then palyra bench (PALYRA_BENCH=flags); about 3 minutes"
	@echo "make bench-faults  time how a node lives through faults (gateway vanishing, sleep, UDP blocked, floods); about 6 minutes"
	@echo "make proto   regenerate the protobuf code in proto/"
	@echo "make man     write the command line's man pages into man/ (MANDIR=dir for elsewhere)"
	@echo "make run     build the desktop app and start it with its local gateway"
	@echo "make package build the desktop app's platform package with the fyne tool"
	@echo "make screenshots  copy the desktop tests' screenshots into docs/screenshots"

# Everything but the desktop app (the root package) builds without cgo.
build:
	CGO_ENABLED=0 $(GO) build $$($(GO) list ./... | grep -vx 'github.com/palyra/palyra-go')

test-deps:
	@command -v $(GO) >/dev/null 2>&1 || { echo "Go 1.26 or newer is needed: https://go.dev/dl/"; exit 1; }
	$(call ensure_packages,$(TEST_PACKAGES))
	$(call ensure_packages,$(GUI_PACKAGES) $(GUI_TEST_PACKAGES))

# identity/zlinttest is a module of its own (zlint needs a replace directive,
# which would stop `go install …/cmd/palyra@VERSION`); it is vetted and tested
# with the rest.
ZLINT_MODULE := identity/zlinttest

vet:
	$(GO) vet ./...
	cd $(ZLINT_MODULE) && $(GO) vet ./...

# Only Linux runs the tests here, so for Windows and macOS the command line
# is built and every package is type-checked, tests included (go vet). The
# desktop app (the root package) needs cgo: for Windows it is vetted with
# mingw-w64 (the first run compiles GLFW, a few minutes); for macOS it and
# app/ (Fyne's macOS code is cgo) cannot be, without Apple's SDK.
CROSS_BUILD := linux/amd64 linux/arm64 windows/amd64 windows/arm64 darwin/amd64 darwin/arm64
CROSS_VET   := windows/amd64 darwin/arm64
CROSS_PACKAGES := mingw-w64-x86-64-dev gcc-mingw-w64-x86-64
MINGW_CC    := x86_64-w64-mingw32-gcc

cross-deps:
	$(call ensure_packages,$(CROSS_PACKAGES))

cross: cross-deps
	@set -e; for t in $(CROSS_BUILD); do \
		echo "CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build ./cmd/..."; \
		CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -o /dev/null ./cmd/...; \
	done
	@set -e; for t in $(CROSS_VET); do \
		pkgs=$$(GOOS=$${t%/*} $(GO) list -e ./... | grep -vx 'github.com/palyra/palyra-go'); \
		[ $${t%/*} = windows ] || pkgs=$$(echo "$$pkgs" | grep -vx 'github.com/palyra/palyra-go/app'); \
		echo "CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet <$$(echo $$pkgs | wc -w) packages>"; \
		CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet $$pkgs; \
	done
	CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=$(MINGW_CC) $(GO) vet .

# Windows programs under Wine (the files tagged wine; internal/testwine):
# Credential Manager through the secret store, palyra.exe as a node of a
# Linux gateway with its local API, the admin commands over the endpoint
# file, the per-user directories, shell.exec's job object, the Run key. The booted Wine prefix is kept in the user's cache dir
# (PALYRA_WINE_CACHE elsewhere); each test clones it. The desktop app
# (the root package) is built with mingw-w64 cgo and run on Xvfb: from a
# cold build cache that build alone takes minutes, hence the timeout; its
# test binary is the root package's, built for Linux with cgo.
WINE_PACKAGES := wine wine64 $(CROSS_PACKAGES) $(GUI_PACKAGES) xvfb imagemagick xdotool
WINE_TESTS    := ./cmd/palyra ./identity/secretstore ./internal/dirlock ./internal/localsock ./internal/userdirs ./node/capability/builtin ./node/netwatch ./app/autostart ./internal/oneinstance .

test-windows:
	$(call ensure_packages,$(WINE_PACKAGES))
	$(GO) vet -tags wine $(WINE_TESTS) ./internal/testwine
	$(GO) test -tags wine -race -count=1 -timeout 30m -run UnderWine $(WINE_TESTS)

# The keychain tests start their own D-Bus session and gnome-keyring, with a
# throwaway HOME, so they never touch the keyring of the person running them.
# The reconnect storm runs a second time without the race detector, with
# 1,000 nodes rather than 200.
test: test-deps vet build cross test-windows
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -count=1 -timeout 15m -run '^TestStorm$$' ./internal/bench/
	cd $(ZLINT_MODULE) && $(GO) test -race -count=1 ./...

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -skip '^Benchmark($(FAULT_BENCH))$$' -benchmem -benchtime $(BENCHTIME) ./...
	$(GO) run ./cmd/palyra bench $(PALYRA_BENCH)

bench-faults:
	$(GO) test -run '^$$' -bench '^Benchmark($(FAULT_BENCH))$$' -benchmem -benchtime 1x ./gateway

# One page per command (palyra.1, palyra-nodes-invoke.1, ...), generated
# from the commands' own help by the hidden `palyra gen-man` command; not
# committed, so they never fall behind the code.
MANDIR ?= man
man:
	$(GO) run ./cmd/palyra gen-man $(MANDIR)

proto-deps:
	$(call ensure_packages,$(PROTO_PACKAGES))
	@[ -x $(TOOLS_BIN)/protoc-gen-go ] || GOBIN=$(TOOLS_BIN) $(GO) install $(PROTOC_GEN_GO)
	@[ -x $(TOOLS_BIN)/protoc-gen-go-grpc ] || GOBIN=$(TOOLS_BIN) $(GO) install $(PROTOC_GEN_GO_GRPC)

proto: proto-deps
	PATH="$(TOOLS_BIN):$$PATH" protoc -I . --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative $$(find proto -name '*.proto' | sort)

gui-deps:
	@command -v $(GO) >/dev/null 2>&1 || { echo "Go 1.26 or newer is needed: https://go.dev/dl/"; exit 1; }
	$(call ensure_packages,$(GUI_PACKAGES))

# The desktop app needs cgo (Fyne's OpenGL driver); the first build takes a
# few minutes.
desktop: gui-deps
	$(GO) build -o palyra-desktop .

# Starts the tray app (or its window, where the desktop has no tray) with
# the local gateway, on the current display; state in the usual per-user
# directories, the device key in the OS keychain.
run: desktop
	./palyra-desktop --local-gateway

# On Linux and the BSDs: Palyra.tar.xz, with the palyra-desktop binary, its
# .desktop entry and icon (`make install` inside installs them). Elsewhere
# the fyne tool builds and packages for the platform it runs on.
package: gui-deps
ifeq ($(filter Linux %BSD DragonFly,$(shell uname -s)),)
	$(GO) run $(FYNE_TOOL) package --release
else
	$(GO) build -tags release -ldflags "-s -w" -o palyra-desktop .
	$(GO) run $(FYNE_TOOL) package --release --exe palyra-desktop
endif

clean:
	rm -rf $(TOOLS_BIN) artifacts man

# The README's screenshots, from the last run of the desktop tests (make
# test); the tray's are cropped to the top right, where the menu opens.
SCREENSHOTS      := main-window-connected pairing-wizard pairing-waiting pairing-code pairing-request main-window-offline consent-prompt
TRAY_SCREENSHOTS := tray-menu-not-paired tray-menu-connected tray-menu-revoked
screenshots:
	@for s in $(SCREENSHOTS) $(TRAY_SCREENSHOTS) tray-menu-offline; do \
		[ -f artifacts/desktop-app/$$s.png ] || { echo "no artifacts/desktop-app/$$s.png: run make test first"; exit 1; }; \
	done
	for s in $(SCREENSHOTS); do cp artifacts/desktop-app/$$s.png docs/screenshots/; done
	for s in $(TRAY_SCREENSHOTS); do \
		convert artifacts/desktop-app/$$s.png -gravity NorthEast -crop 760x420+0+0 +repage docs/screenshots/$$s.png; \
	done
	convert artifacts/desktop-app/tray-menu-offline.png -gravity NorthEast -crop 760x800+0+0 +repage docs/screenshots/tray-menu-offline.png
