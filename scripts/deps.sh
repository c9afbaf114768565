#!/usr/bin/env bash
# Install the Debian 12 packages nnd needs, only those that are missing.
#   scripts/deps.sh                 build dependencies
#   scripts/deps.sh --oracles       plus the optional test oracles and data
#   scripts/deps.sh PKG...          plus the named extra packages
# Idempotent: when everything is installed it only runs dpkg-query (fast),
# and never touches the network.
set -euo pipefail

pkgs=(build-essential cmake flex bison zlib1g-dev libdeflate-dev libssl-dev libcjson-dev)
oracles=(librandom123-dev librandom123-doc libmpfr-dev libonnx-testdata
         python3-torch dataset-fashion-mnist valgrind)

for arg in "$@"; do
  case "$arg" in
    --oracles) pkgs+=("${oracles[@]}") ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "deps.sh: unknown option $arg" >&2; exit 1 ;;
    *) pkgs+=("$arg") ;;
  esac
done

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing=()
for p in "${pkgs[@]}"; do
  installed "$p" || missing+=("$p")
done

# LLVM: any llvm-N-dev from 14 to 19 will do (CMake finds llvm-config-N).
# Plain llvm-dev is Debian 12's default, LLVM 14.
have_llvm=
for v in 19 18 17 16 15 14; do
  if installed "llvm-$v-dev"; then have_llvm=$v; break; fi
done
[ -n "$have_llvm" ] || missing+=(llvm-dev)

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps.sh: all ${#pkgs[@]} packages present${have_llvm:+ (LLVM $have_llvm)}" >&2
  exit 0
fi

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo
  else echo "deps.sh: not root and no sudo; install as root: ${missing[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
echo "deps.sh: installed ${missing[*]}" >&2
