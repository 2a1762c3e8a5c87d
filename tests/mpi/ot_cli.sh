#!/bin/bash
# `mpirun -np P otgrid ot …` against the serial CLI (run by `make test-distributed`).
#
# For each problem: the serial `otgrid ot --method bfm` file (its levels and push-forward
# included — the change of variables on the smooth torus pair, the deposit elsewhere;
# Sinkhorn: `--method sinkhorn`, its multiscale levels included; the parabolic Monge–Ampère
# flow: `--method parabolic`, linearly implicit and explicit), then the same command line
# (bfm: without --method) under mpirun with 1, 2 and 4 ranks (the pencil cases: 6 and 8
# ranks, more than the grid's z planes, so each method runs on y–z pencils). Every method:
# every field and diagnostic identical (h5diff) and the attributes iterations, outcome,
# marginal_error, w2_squared and transport_cost equal (h5dump; for a pair of Gaussian specs
# also map_error_l2_bulk and map_error_max_bulk, at h5dump's printed precision). Two problems read their source from another's results file (each
# rank reads its planes' hyperslab; on pencils, its planes' and rows'). Then the refusals: more ranks than rows of a 2D grid, a method
# without a distributed solver, another subcommand, a density with a NaN, negative values or
# a missing file, a disk that fills up mid-write — each ends every rank with status 2 and
# one error line, and leaves no file.
# Usage: tests/mpi/ot_cli.sh BIN MPIRUN… (MPIRUN: the launcher with its flags)
set -euo pipefail
bin=$1
shift
mpirun=("$@")
dir=target/mpi-ot
rm -rf "$dir" && mkdir -p "$dir"

bumps=(--source "1+0.8*exp(-((x-0.4)^2+(y-0.45)^2+(z-0.5)^2)/0.04)" --target "1+0.6*exp(-((x-0.6)^2+(y-0.5)^2+(z-0.45)^2)/0.05)")
attributes=(iterations outcome marginal_error w2_squared transport_cost)
mixture="exp(-((x-0.3)^2+(y-0.4)^2+(z-0.45)^2)/0.01)+0.6*exp(-((x-0.7)^2+(y-0.6)^2+(z-0.55)^2)/0.006)"
cases=(
  "box64|bfm|--grid 64x64x64 --source $mixture --target gaussian:0.55,0.5,0.5:0.012,0,0,0,0.01,0.002,0,0.002,0.009"
  "box96|bfm|--grid 96x96x96 --source gaussian:0.42,0.45,0.5:0.012,0,0,0,0.01,0,0,0,0.011 --target $mixture"
  "uneven|bfm|--grid 67x61x59 --bc neumann,periodic,neumann --source gaussian:0.45,0.5,0.5:0.01,0,0,0,0.01,0,0,0,0.01 --target $mixture"
  "torus64|bfm|--grid 64x64x64 --bc periodic,periodic,periodic --source gaussian:0.3,0.45,0.2:0.01,0,0,0,0.012,0,0,0,0.01 --target $mixture"
  "smooth-torus64|bfm|--grid 64x64x64 --bc periodic,periodic,periodic --source 1+0.4*sin(2*PI*x)*cos(2*PI*z) --target 1+0.3*cos(2*PI*(y-z))+0.2*sin(2*PI*x) --push-forward auto"
  "file64|bfm|--grid 64x64x64 --source $dir/box64-serial.h5:/fields/target --target $mixture"
  "sinkhorn64|sinkhorn|--grid 64x64x64 --source $mixture --target gaussian:0.55,0.5,0.5:0.012,0,0,0,0.01,0.002,0,0.002,0.009"
  "sinkhorn96|sinkhorn|--grid 96x96x96 --source gaussian:0.42,0.45,0.5:0.012,0,0,0,0.01,0,0,0,0.011 --target $mixture"
  "sinkhorn-uneven|sinkhorn|--grid 70x66x62 --bc neumann,periodic,neumann --source gaussian:0.45,0.5,0.5:0.01,0,0,0,0.01,0,0,0,0.01 --target $mixture"
  "parabolic64|parabolic|--grid 64x64x64"
  "parabolic-torus48|parabolic|--grid 48x48x48 --bc periodic,periodic,periodic --source 1+0.4*sin(2*PI*x)*cos(2*PI*z) --target 1+0.3*cos(2*PI*(y-z))+0.2*sin(2*PI*x)"
  "parabolic-lift|parabolic|--grid 26x24x22 --source exp(-((x-0.45)^2+(y-0.5)^2+(z-0.5)^2)/0.02) --target exp(-((x-0.55)^2+(y-0.45)^2+(z-0.52)^2)/0.03)"
  "parabolic-explicit|parabolic|--grid 34x31x29 --bc neumann,periodic,neumann --explicit --max-iterations 80 --keep-unconverged"
  "sinkhorn-pencils|sinkhorn|--grid 48x44x5 --source $mixture --target gaussian:0.55,0.5,0.5:0.012,0,0,0,0.01,0.002,0,0.002,0.009|6 8"
  "sinkhorn-pencils-torus|sinkhorn|--grid 40x36x4 --bc periodic,periodic,periodic --source gaussian:0.3,0.45,0.2:0.01,0,0,0,0.012,0,0,0,0.01 --target $mixture|6"
  "bfm-pencils|bfm|--grid 48x44x5 --source $mixture --target gaussian:0.55,0.5,0.5:0.012,0,0,0,0.01,0.002,0,0.002,0.009|6 8"
  "bfm-pencils-file|bfm|--grid 48x44x5 --source $dir/bfm-pencils-serial.h5:/fields/target --target $mixture|6"
  "smooth-torus-pencils|bfm|--grid 40x36x5 --bc periodic,periodic,periodic --source 1+0.4*sin(2*PI*x)*cos(2*PI*z) --target 1+0.3*cos(2*PI*(y-z))+0.2*sin(2*PI*x) --push-forward auto --tol 1e-3|6"
  "bfm-pencils-torus|bfm|--grid 40x36x4 --bc periodic,periodic,periodic --source gaussian:0.3,0.45,0.2:0.01,0,0,0,0.012,0,0,0,0.01 --target $mixture|6"
  "parabolic-pencils|parabolic|--grid 40x36x5|6 8"
  "gaussians|bfm|--grid 48x44x40 --source gaussian:0.45,0.5,0.5:0.012,0,0,0,0.01,0,0,0,0.011 --target gaussian:0.55,0.5,0.5:0.012,0,0,0,0.01,0.002,0,0.002,0.009|2 4"
  "gaussians-pencils|bfm|--grid 48x44x5 --source gaussian:0.45,0.5,0.5:0.012,0,0,0,0.01,0,0,0,0.011 --target gaussian:0.55,0.5,0.5:0.012,0,0,0,0.01,0.002,0,0.002,0.009|6"
  "parabolic-pencils-torus|parabolic|--grid 36x32x4 --bc periodic,periodic,periodic --source 1+0.4*sin(2*PI*x)*cos(2*PI*z) --target 1+0.3*cos(2*PI*(y-z))+0.2*sin(2*PI*x)|8"
  "parabolic-pencils-lift|parabolic|--grid 26x24x5 --source exp(-((x-0.45)^2+(y-0.5)^2+(z-0.5)^2)/0.02) --target exp(-((x-0.55)^2+(y-0.45)^2+(z-0.52)^2)/0.03)|6"
  "parabolic-pencils-explicit|parabolic|--grid 34x31x4 --bc neumann,periodic,neumann --explicit --max-iterations 80 --keep-unconverged|6"
)
for case in "${cases[@]}"; do
  IFS='|' read -r name method args ranks <<< "$case"
  read -r -a problem <<< "$args"
  serial=(--method "$method")
  distributed=(--method "$method")
  if [ "$method" = bfm ]; then
    distributed=()
  elif [ "$method" = parabolic ]; then
    case "$args" in *--source*) ;; *) problem+=("${bumps[@]}") ;; esac
  fi
  start=$(date +%s%N)
  "$bin" -q ot "${problem[@]}" "${serial[@]}" -o "$dir/$name-serial.h5" > /dev/null
  serial_ms=$((($(date +%s%N) - start) / 1000000))
  for p in ${ranks:-1 2 4}; do
    start=$(date +%s%N)
    "${mpirun[@]}" -np "$p" "$bin" -q ot "${problem[@]}" "${distributed[@]}" -o "$dir/$name-np$p.h5" > /dev/null
    ms=$((($(date +%s%N) - start) / 1000000))
    for group in /fields /diagnostics; do
      h5diff "$dir/$name-serial.h5" "$dir/$name-np$p.h5" "$group" "$group" || {
        echo "error: $name, $p ranks: $group differs from the serial run's" >&2; exit 1; }
    done
    # A pair with a closed-form map (two Gaussian specs): its map error too.
    extra=()
    if h5dump -a map_error_l2_bulk "$dir/$name-serial.h5" > /dev/null 2>&1; then
      extra=(map_error_l2_bulk map_error_max_bulk)
    fi
    for a in "${attributes[@]}" "${extra[@]}"; do
      value() { h5dump -a "$a" "$1" | sed -n '/DATA {/,/}/p'; }
      [ "$(value "$dir/$name-serial.h5")" = "$(value "$dir/$name-np$p.h5")" ] || {
        echo "error: $name, $p ranks: attribute $a differs from the serial run's" >&2; exit 1; }
    done
    its=$(h5dump -a iterations "$dir/$name-np$p.h5" | sed -n 's/^ *(0): //p')
    printf 'otgrid ot %s (%s) under mpirun -np %d: fields and diagnostics identical, %s equal to the serial run (%s iterations; %d ms, serial %d ms, wall)\n' \
      "$name" "$method" "$p" "${attributes[*]}${extra:+ ${extra[*]}}" "$its" "$ms" "$serial_ms"
  done
done

# Refusals: every rank stops with status 2, rank 0 alone prints the one error line, no file.
refused() {
  local expect=$1 ranks=$2
  shift 2
  local status=0
  "${mpirun[@]}" -np "$ranks" "$bin" "$@" > /dev/null 2> "$dir/refusal.txt" || status=$?
  if [ "$status" -ne 2 ] || [ "$(grep -c '^error: ' "$dir/refusal.txt")" -ne 1 ] ||
    ! grep -q "^error: .*$expect" "$dir/refusal.txt"; then
    echo "error: expected one '$expect' error and status 2 (got $status):" >&2
    cat "$dir/refusal.txt" >&2
    exit 1
  fi
  echo "refused as expected: $(grep '^error: ' "$dir/refusal.txt")"
}
refused "5 ranks for 4 planes along axis y: every rank needs a plane" 5 ot --grid 16x4 --source uniform --target uniform -o "$dir/planes.h5"
refused "solves by bfm, sinkhorn or parabolic" 2 ot --grid 16x16x16 --source uniform --target uniform --method newton -o "$dir/method.h5"
refused "parabolic does not solve this pair: .*on a periodic domain" 2 ot --grid 16x16x16 --bc periodic,periodic,periodic --source gaussian:0.45,0.5,0.5:0.01,0,0,0,0.01,0,0,0,0.01 --target uniform --method parabolic -o "$dir/low-contrast.h5"
refused "only .otgrid ot. runs distributed" 2 demo --grid 16x16x16 --out "$dir/demo.h5"
refused "source density: NaN or infinite value at storage index \[0, 0, 0\]" 2 ot --grid 16x16x16 --source "log(z-0.7)" --target uniform -o "$dir/nan.h5"
refused "target density: cannot be a density: it has negative values" 4 ot --grid 16x16x16 --source uniform --target "0.7-z" -o "$dir/negative.h5"
refused "source: no such file" 2 ot --grid 16x16x16 --source "$dir/none.h5:/fields/rho" --target uniform -o "$dir/missing.h5"
# A disk that fills up mid-write (a 1 MiB tmpfs, then others; mounting needs root): every rank stops with
# the one error, status 2, and neither the file nor a temporary is left; the serial writer alike.
tiny=$(mktemp -d)
if mount -t tmpfs -o size=1m tmpfs "$tiny" 2> /dev/null; then
  trap 'umount "$tiny" 2> /dev/null; rmdir "$tiny"' EXIT
  full=(ot --grid 32x32x32 --source gaussian:0.45,0.5,0.5:0.01,0,0,0,0.01,0,0,0,0.01 --target uniform -o "$tiny/out.h5")
  refused "file write failed" 2 "${full[@]}"
  refused "file write failed" 4 "${full[@]}"
  # Other sizes fill the disk during another rank's part than the lead's: the lead still
  # reports that rank's cause ("… file write failed (on rank k)"), not a bare "another rank
  # failed". Which rank fails first depends on timing; every outcome must be the one error.
  for size in 300k 700k 1500k 2200k; do
    umount "$tiny" && mount -t tmpfs -o size=$size tmpfs "$tiny"
    refused "file write failed" 4 "${full[@]}"
    [ -z "$(ls -A "$tiny")" ] || { echo "error: a failed write left $(ls -A "$tiny")" >&2; exit 1; }
  done
  umount "$tiny" && mount -t tmpfs -o size=1m tmpfs "$tiny"
  status=0
  "$bin" -q "${full[@]}" 2> "$dir/full-serial.txt" || status=$?
  grep -q "^error: .*No space left on device" "$dir/full-serial.txt" && [ "$status" -eq 2 ] || {
    echo "error: the serial write to a full disk did not fail cleanly (status $status)" >&2; exit 1; }
  if [ -n "$(ls -A "$tiny")" ]; then
    echo "error: a failed write left $(ls -A "$tiny")" >&2
    exit 1
  fi
  echo "a full disk mid-write: every rank and the serial run stopped with status 2, nothing left behind"
else
  rmdir "$tiny"
  echo "skipped: the full-disk write (mounting a tmpfs needs root)"
fi
if ls "$dir" | grep -q -e planes -e method -e low-contrast -e demo -e nan -e negative -e missing -e '^\.'; then
  echo "error: a refused run left a file: $(ls -a "$dir")" >&2
  exit 1
fi
