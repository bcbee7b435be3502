#!/usr/bin/env bash
# Packs what a run on the lent GPU machine needs into .gpu/ (git-ignored): the CUDA
# build of atelier (xz), the PyTorch baseline script and copies of the shared files the
# run reads. Then call the device tool's `run` with carry [".gpu"] and the command
#   bash .gpu/gpu_run.sh
# Usage: benches/gpu_pack.sh [SHARED_DIR]   (default ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=$(cd "${1:-../shared}" && pwd)
BIN=target/cuda/release/atelier
[ -x "$BIN" ] || { echo "build first: source $SHARED/gpu/cuda-toolchain.sh && cargo build --release --features cuda --target-dir target/cuda" >&2; exit 1; }
rm -rf .gpu && mkdir -p .gpu/ref
xz -T2 -6 -c "$BIN" > .gpu/atelier.xz
cp "$SHARED/bench/pytorch_reference.py" .gpu/
# The VGG16 travels with the working tree (models/).
cp -r "$SHARED/reference/fast-style-transfer/checkpoints/udnie" .gpu/ref/udnie
cp "$SHARED/reference/fast-style-transfer/content/chicago.png" .gpu/ref/
cp "$SHARED/reference/fast-style-transfer/expected/chicago_udnie.png" .gpu/ref/
# Training data for a quality run (train/ only; eval/ is for measuring).
cp -r "$SHARED/datasets/imagenet-sample-256/train" .gpu/train
mkdir -p .gpu/styles && cp "$SHARED/styles/"{starry_night,the_scream,wave,udnie,composition_vii,the_shipwreck_of_the_minotaur}.jpg .gpu/styles/
cp benches/gpu_run.sh benches/torch_train_reference.py .gpu/
du -sh .gpu
