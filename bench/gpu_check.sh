#!/usr/bin/env bash
# bench/gpu_check.py on a GPU machine, from the repository root: that machine has its
# own Python (3.12) and torch; this project's other packages travel as wheels in .whl/,
# made on the workstation (ignored by git) with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl PKG==VERSION
# for each package of requirements/lock.txt that its Python lacks (lsds has no wheel:
# `python3.12 -m pip wheel --no-deps lsds==0.1.3 -w .whl`). Figures and checkpoints go
# to $OUT.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 bench/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
