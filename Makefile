# otgrid — two commands: `make demo` runs the main job, `make test` runs every check.
# Both install what a fresh Debian machine with only Rust lacks (idempotently, via apt-get).

SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/otgrid
OUT ?= demo-output

# Needed to build (hdf5-metno links the system HDF5), to inspect files (h5dump) and to label
# the CLI's PNG plots (DejaVu Sans).
APT_BUILD := libhdf5-dev pkg-config hdf5-tools fonts-dejavu-core
# Needed by the ParaView integration test (pvpython with Debian's python3).
APT_PARAVIEW := paraview python3-paraview
# Needed by the `distributed` feature: Open MPI (headers, mpirun) and libclang for the MPI
# bindings' generator.
APT_MPI := libopenmpi-dev openmpi-bin libclang-dev
# mpirun refuses root unless told; CI runs as root.
MPIRUN := mpirun --oversubscribe $(shell [ "$$(id -u)" = 0 ] && echo --allow-run-as-root)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# $(call apt_install,PACKAGES): install the missing ones only; refresh the index first,
# since a stale index can make dependencies look uninstallable.
define apt_install
	@missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "error: missing$$missing and apt-get is not available; install them with your package manager" >&2; exit 1; \
	fi; \
	echo "installing:$$missing"; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing
endef

.PHONY: all build deps deps-build deps-paraview deps-mpi demo test test-distributed lint fmt bench doc clean

all: build

deps-build:
	$(call apt_install,$(APT_BUILD))

deps-paraview:
	$(call apt_install,$(APT_PARAVIEW))

deps-mpi:
	$(call apt_install,$(APT_MPI))

deps: deps-build deps-paraview deps-mpi

build: deps-build
	$(CARGO) build --release

# The main job on built-in defaults: a demo field set on a 2D and a 3D grid, with XDMF sidecars.
# The main job: the Brenier map between the reference Gaussian pair at 256² (result.h5 +
# result.xmf), with its error against the closed-form map; then the field-output demos.
demo: build
	mkdir -p $(OUT)
	$(BIN) ot --mesh unit_square_256 \
	  --source gaussian:0.4,0.45:0.0064,0,0,0.0064 \
	  --target gaussian:0.6,0.55:0.0036,0,0,0.01 \
	  --out $(OUT)/result.h5
	$(BIN) demo --mesh unit_square_256 --out $(OUT)/demo2d.h5
	$(BIN) demo --mesh unit_cube_64 --out $(OUT)/demo3d.h5
	@echo "Open $(OUT)/result.xmf in ParaView (Warp By Vector on 'displacement'); demo2d/3d.xmf too."

lint: deps-build
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --all-targets -- -D warnings

# Every check: formatting, clippy, and all tests in release mode including the ParaView and
# h5dump checks (which must run here, not skip); then the numerical core without optional
# features (no HDF5, PNG or CLI): it must build, pass clippy and pass its unit tests.
test: deps lint
	OTGRID_REQUIRE_PARAVIEW=1 $(CARGO) test --release
	$(CARGO) build --release --no-default-features
	$(CARGO) clippy --release --no-default-features --lib -- -D warnings
	$(CARGO) test --release --no-default-features --lib
	$(MAKE) test-distributed

# The distributed build over the system MPI: clippy, then the slab Poisson solver and
# c-transform against the serial ones under mpirun with 1, 2 and 4 ranks (64³, 96³ and
# non-divisible grids), and a refused decomposition.
test-distributed: deps-mpi
	$(CARGO) clippy --release --features distributed --lib --example distributed_poisson_check -- -D warnings
	$(CARGO) build --release --features distributed --example distributed_poisson_check
	for p in 1 2 4; do $(MPIRUN) -np $$p target/release/examples/distributed_poisson_check || exit 1; done
	@# More ranks than planes: every rank stops, one error line, non-zero status.
	@if $(MPIRUN) -np 4 target/release/examples/distributed_poisson_check --grid 16x16x3 2> target/mpi_refusal.txt; then \
	  echo "error: a 4-rank run on 3 planes was not refused" >&2; exit 1; fi; \
	grep -c "^error: 4 ranks for 3 planes" target/mpi_refusal.txt | grep -qx 1 || { cat target/mpi_refusal.txt >&2; exit 1; }; \
	echo "refused as expected: $$(grep '^error:' target/mpi_refusal.txt)"

bench: deps-build
	$(CARGO) bench

fmt:
	$(CARGO) fmt --all

doc:
	$(CARGO) doc --no-deps

clean:
	$(CARGO) clean
	rm -rf $(OUT)
