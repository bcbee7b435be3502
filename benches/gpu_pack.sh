#!/usr/bin/env bash
# Packs what a run on the lent GPU machine needs into .gpu/ (git-ignored): the CUDA
# build of atelier (xz), the PyTorch baseline script and copies of the shared files the
# run reads. Then call the device tool's `run` with carry [".gpu"] and the command
#   bash .gpu/gpu_run.sh
# Usage: benches/gpu_pack.sh [SHARED_DIR]   (default ../shared)
#   BIN=...       the build to run (default target/cuda/release/atelier)
#   CHECK_BIN=... the cuda_check example (default target/cuda/release/examples/cuda_check,
#                 packed when present; `convcheck` step of gpu_run.sh)
#   BASE_BIN=...  an older build to bench in the same call (`BASE=1` in gpu_run.sh)
#   TRAIN_DATA=0  leave out the training images
#   FFMPEG=...    a static ffmpeg build (e.g. from the imageio-ffmpeg wheel: `pip download
#                 imageio-ffmpeg`, unzip, imageio_ffmpeg/binaries/ffmpeg-*) for the `video` step:
#                 packed with a 1920x1080 clip made from ../shared/content/fox.mp4 and the
#                 local ffprobe's description of it (the GPU machine has no ffprobe).
#                 FFMPEG_XZ=... instead takes an already xz-compressed build.
#   VIDEO_FRAMES=120  length of that clip
#   STYLES=all    pack every public-domain painting (the six in styles/ and styles/more/) for
#                 gpu_train_many.sh, or STYLES="wave the_kiss" just those, or STYLES=jobs the
#                 paintings the JOBS file names; default: the six
#   JOBS=FILE     the run list for gpu_train_many.sh (packed as .gpu/jobs.txt)
#   EVAL_DATA=1   pack the held-out photos (imagenet-sample-256/eval) for `atelier eval`
#   NO_REF=1      leave out the fast-style-transfer reference checkpoint (the `check` step)
# Size: benches/gpu_slim.sh out|back moves the tracked files a call does not need (the gallery
# models, the instant network, docs images) out of the working tree and back.
# The xz'd ffmpeg is 21 MB, so with it the working tree (40 MB) + .gpu no longer fit the
# device tool's 64 MiB. For such a call pack with TRAIN_DATA=0, delete .gpu/ref and .gpu/styles,
# and move the gallery models other than starry_night out of models/ until the call returns.
# The cuDNN build (the fast one):
#   source ../shared/gpu/cuda-toolchain.sh && export CUDNN_LIB=$(bash benches/cudnn_stub.sh)
#   cargo build --release --features cudnn --target-dir target/cuda --bin atelier --example cuda_check
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=$(cd "${1:-../shared}" && pwd)
BIN=${BIN:-target/cuda/release/atelier}
CHECK_BIN=${CHECK_BIN:-target/cuda/release/examples/cuda_check}
[ -x "$BIN" ] || { echo "build first: source $SHARED/gpu/cuda-toolchain.sh && cargo build --release --features cuda --target-dir target/cuda" >&2; exit 1; }
rm -rf .gpu && mkdir -p .gpu/ref
xz -T2 -6 -c "$BIN" > .gpu/atelier.xz
if [ -x "$CHECK_BIN" ]; then xz -T2 -6 -c "$CHECK_BIN" > .gpu/cuda_check.xz; fi
if [ -n "${BASE_BIN:-}" ]; then xz -T2 -6 -c "$BASE_BIN" > .gpu/atelier-base.xz; fi
cp "$SHARED/bench/pytorch_reference.py" .gpu/
# ../shared/bench/pytorch_reference.py's network and loss; benches/pytorch_compiled.py imports them.
# The VGG16 travels with the working tree (models/).
if [ "${NO_REF:-0}" != 1 ]; then
  cp -r "$SHARED/reference/fast-style-transfer/checkpoints/udnie" .gpu/ref/udnie
  cp "$SHARED/reference/fast-style-transfer/content/chicago.png" .gpu/ref/
  cp "$SHARED/reference/fast-style-transfer/expected/chicago_udnie.png" .gpu/ref/
fi
# Training data for a quality run (train/ only; eval/ is for measuring); TRAIN_DATA=0 leaves
# it out when the run needs no `train` step (the working tree + .gpu must stay under 64 MiB).
if [ "${TRAIN_DATA:-1}" != 0 ]; then cp -r "$SHARED/datasets/imagenet-sample-256/train" .gpu/train; fi
mkdir -p .gpu/styles
case "${STYLES:-}" in
  "") cp "$SHARED/styles/"{starry_night,the_scream,wave,udnie,composition_vii,the_shipwreck_of_the_minotaur}.jpg .gpu/styles/ ;;
  all) cp "$SHARED/styles/"{starry_night,the_scream,wave,udnie,composition_vii,the_shipwreck_of_the_minotaur}.jpg \
         "$SHARED/styles/more/"*.jpg .gpu/styles/ ;;
  jobs) for p in $(grep -v '^\s*#' "${JOBS:?STYLES=jobs needs JOBS=FILE}" | awk 'NF {print $2}' | sort -u); do
          cp "$(ls "$SHARED/styles/$p" "$SHARED/styles/more/$p" 2>/dev/null | head -1)" .gpu/styles/; done ;;
  *) for s in $STYLES; do cp "$(ls "$SHARED/styles/$s.jpg" "$SHARED/styles/more/$s.jpg" 2>/dev/null | head -1)" .gpu/styles/; done ;;
esac
if [ "${EVAL_DATA:-0}" = 1 ]; then cp -r "$SHARED/datasets/imagenet-sample-256/eval" .gpu/eval; fi
if [ -n "${FFMPEG:-}${FFMPEG_XZ:-}" ]; then
  mkdir -p .gpu/video
  if [ -n "${FFMPEG_XZ:-}" ]; then cp "$FFMPEG_XZ" .gpu/video/ffmpeg.xz; else xz -T2 -9 -c "$FFMPEG" > .gpu/video/ffmpeg.xz; fi
  ffmpeg -v error -y -i "$SHARED/content/fox.mp4" -frames:v "${VIDEO_FRAMES:-120}" -vf scale=1920:1080 \
    -c:v libx264 -crf 23 -preset fast -pix_fmt yuv420p -an .gpu/video/fox1080.mp4
  ffprobe -v error -show_streams -show_format -of json .gpu/video/fox1080.mp4 > .gpu/video/fox1080.ffprobe.json
fi
cp benches/gpu_run.sh benches/gpu_train_many.sh benches/torch_train_reference.py benches/pytorch_compiled.py .gpu/
[ -n "${JOBS:-}" ] && cp "$JOBS" .gpu/jobs.txt
du -sh .gpu
