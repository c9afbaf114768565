#!/bin/sh
# torch_check.sh GRADCHECK MODEL DUMP: nnd's gradients against PyTorch's.
# Exits 77 (skipped) when PyTorch is not installed.
set -e
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c "import torch" 2>/dev/null || { echo "python3-torch not installed: skipped"; exit 77; }
"$1" "$2" --dump "$3"
exec "$PY" "$(dirname "$0")/torch_check.py" "$3"
