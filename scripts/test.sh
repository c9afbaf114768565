#!/usr/bin/env bash
# README command 2: install build deps and test oracles, build (RelWithDebInfo)
# into build/ and run the test suite.
#   NND_SANITIZE=1  also build build-asan/ with ASan+UBSan and run the tests
#                   there (tests labelled "slow" are skipped)
#   NND_JOBS=N      build/test parallelism (default 2)
# Exits non-zero if the build or any test fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh --oracles

jobs=${NND_JOBS:-2}

# configure DIR ARGS...: reuse DIR unless it was configured from another tree
configure() {
  local dir=$1; shift
  if [ -f "$dir/CMakeCache.txt" ] &&
     ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$(pwd -P)" "$dir/CMakeCache.txt"; then
    echo "test.sh: $dir/ belongs to another source tree; removing it" >&2
    rm -rf "$dir"
  fi
  cmake -S . -B "$dir" "$@"
}

status=0

echo "=== build/ (RelWithDebInfo) ===" >&2
configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNND_SANITIZE=OFF
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" || status=1

if [ "${NND_SANITIZE:-0}" = 1 ]; then
  echo "=== build-asan/ (ASan+UBSan) ===" >&2
  configure build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNND_SANITIZE=ON
  cmake --build build-asan -j"$jobs"
  exclude=()
  if ctest --test-dir build-asan --print-labels 2>/dev/null | grep -qx '[[:space:]]*slow'; then
    exclude=(-LE slow)
  fi
  export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  ctest --test-dir build-asan --output-on-failure -j"$jobs" "${exclude[@]}" || status=1
fi

if [ "$status" -ne 0 ]; then echo "test.sh: FAILED" >&2; fi
exit "$status"
