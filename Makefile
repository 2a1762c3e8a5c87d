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
# Needed by the `distributed` feature: Open MPI (headers, mpirun), libclang for the MPI
# bindings' generator, and parallel HDF5 (Debian's Open MPI build of libhdf5; h5diff).
APT_MPI := libopenmpi-dev openmpi-bin libclang-dev libhdf5-openmpi-dev hdf5-tools
# mpirun refuses root unless told; CI runs as root.
MPIRUN := mpirun --oversubscribe $(shell [ "$$(id -u)" = 0 ] && echo --allow-run-as-root)
# The distributed build links the parallel libhdf5 instead of the serial one, so it has its
# own target directory (the two builds would otherwise rebuild each other's HDF5 bindings).
DIST_CARGO := HDF5_DIR=/usr/lib/$(shell gcc -dumpmachine)/hdf5/openmpi CARGO_TARGET_DIR=target/distributed $(CARGO)
DIST_CHECK := target/distributed/release/examples/distributed_poisson_check

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

# The distributed build over the system MPI: clippy; then the slab Poisson solver,
# c-transform, soft c-transform and halo operators (−Δ_h + c, −∇·(w∇) + d, ∇_h, ∇_h·) against the serial ones under mpirun with
# 1, 2 and 4 ranks (64³, 96³ and non-divisible grids), each case also written collectively
# (parallel HDF5) and compared with the serial writer's file by h5diff; Sinkhorn on slabs
# against the serial solve (64³ box, 96×90×83 torus); on y–z pencils (6 ranks, more than
# the grids' planes) the Poisson solve and Sinkhorn against the serial ones; a refused
# decomposition; a refused output path (one error, no file left); then `mpirun -np P otgrid ot`
# against the serial CLI (tests/mpi/ot_cli.sh: files identical, refusals).
test-distributed: deps-mpi
	$(DIST_CARGO) clippy --release --features distributed --lib --bin otgrid --example distributed_poisson_check -- -D warnings
	$(DIST_CARGO) build --release --features distributed --bin otgrid --example distributed_poisson_check
	rm -rf target/mpi-check && mkdir -p target/mpi-check
	for p in 1 2 4; do $(MPIRUN) -np $$p $(DIST_CHECK) --out target/mpi-check || exit 1; done
	$(MPIRUN) -np 6 $(DIST_CHECK) --pencils
	@for f in target/mpi-check/case*-np*.h5; do \
	  h5diff $${f%-np*}-serial.h5 $$f || { echo "error: $$f differs from the serial writer's file" >&2; exit 1; }; \
	done; echo "h5diff: every collective file equals the serial writer's ($$(ls target/mpi-check/case*-np*.h5 | wc -l) files)"
	@# More ranks than planes: every rank stops, one error line, non-zero status.
	@if $(MPIRUN) -np 4 $(DIST_CHECK) --grid 16x16x3 2> target/mpi_refusal.txt; then \
	  echo "error: a 4-rank run on 3 planes was not refused" >&2; exit 1; fi; \
	grep -c "^error: 4 ranks for 3 planes" target/mpi_refusal.txt | grep -qx 1 || { cat target/mpi_refusal.txt >&2; exit 1; }; \
	echo "refused as expected: $$(grep '^error:' target/mpi_refusal.txt)"
	@# An output path under a regular file: every rank stops, one error line, no file left.
	@if $(MPIRUN) -np 2 $(DIST_CHECK) --grid 16x16x16 --out target/mpi_refusal.txt/out 2> target/mpi_write_refusal.txt; then \
	  echo "error: a collective write under a regular file was not refused" >&2; exit 1; fi; \
	grep -c "^error: .*Not a directory" target/mpi_write_refusal.txt | grep -qx 1 || { cat target/mpi_write_refusal.txt >&2; exit 1; }; \
	if ls -a target | grep -q "^\.mpi_refusal"; then echo "error: a temporary was left behind" >&2; exit 1; fi; \
	echo "refused as expected: $$(grep '^error:' target/mpi_write_refusal.txt)"
	@# `mpirun -np P otgrid ot …` against the serial CLI: fields and diagnostics h5diff-identical.
	bash tests/mpi/ot_cli.sh target/distributed/release/otgrid $(MPIRUN) --bind-to none

bench: deps-build
	$(CARGO) bench

fmt:
	$(CARGO) fmt --all

doc:
	$(CARGO) doc --no-deps

clean:
	$(CARGO) clean
	rm -rf $(OUT)
