#!/usr/bin/env bash
# Runs on the GPU machine (see benches/gpu_pack.sh). Results go to $OUT (the device tool brings
# back at most 8 files: gpu.txt, convcheck.txt, atelier_bench.txt, pytorch.txt and the train
# step's model, metrics and config).
#   STEPS="check convcheck bench torch compiled instant train ncu ncutrain video"   which parts
#       to run (default: check bench torch). `compiled`: benches/pytorch_compiled.py (fp16,
#       channels_last, torch.compile max-autotune; training bf16 autocast + fused Adam).
#       `instant`: the instant-style network at each precision, its PSNR against f32 on the
#       CPU, and one `stylize --style-image` at the default precision.
#   BENCH_VARIANTS="default ATELIER_TF32=0 ATELIER_CUDNN=0,ATELIER_TF32=0"   one bench per
#       entry, each a comma-separated list of environment settings ("default": none)
#   BENCH_ARGS="--train-iters 100"   extra arguments for every bench
#   BASE=1   also bench .gpu/atelier-base.xz (an older build packed with BASE_BIN=...) first
#   ROUNDS=3 repeat the bench step's builds alternately, swapping which runs first each round
#            (base, new, new, base, …)
#   TRAIN_STYLE=starry_night TRAIN_ITERS=3000 TRAIN_ARGS="--style-weight 2e6"
#   VIDEO_ARGS="--stability 0.9"   extra arguments for the video step (packed with FFMPEG=...)
set -u
# cuDNN: the binary links libcudnn.so.9 (built with --features cudnn); use PyTorch's copy.
CUDNN_DIR=$(python3 -c 'import os, nvidia.cudnn as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null)
[ -e "$CUDNN_DIR/libcudnn.so.9" ] || CUDNN_DIR=$(dirname "$(find / -name 'libcudnn.so.9' -not -path '/proc/*' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib64:$CUDNN_DIR:${LD_LIBRARY_PATH:-}
export ATELIER_DATA_DIR=/tmp/atelier-data
A=/tmp/atelier
xz -dc .gpu/atelier.xz > $A && chmod +x $A
STEPS=${STEPS:-check bench torch}
VGG=models/vgg16-imagenet-keras-conv1_1-conv5_3.f16.safetensors
QUALITY="--quality-model models/starry_night.safetensors --quality-photos assets/examples"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; echo "cudnn: $CUDNN_DIR"; } | tee "$OUT/gpu.txt"
# Sums ncu's per-kernel GPU times from /tmp/ncu.csv into $OUT/$1, in launch order and by name.
ncu_table() {
  python3 - /tmp/ncu.csv <<'PY' 2>&1 | tee "$OUT/$1"
import csv, sys, collections
lines = [l for l in open(sys.argv[1]) if l.startswith('"')]
rows = list(csv.DictReader(lines))
total = collections.OrderedDict()
seq = []
for r in rows:
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    v = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "ns")
    us = v / 1000 if unit == "nsecond" or unit == "ns" else (v if unit in ("usecond", "us") else v * 1000)
    name = r["Kernel Name"][:90]
    seq.append((name, us, r.get("Grid Size", ""), r.get("Block Size", "")))
    total[name] = total.get(name, 0) + us
print("kernels", len(seq), "sum %.1f us" % sum(u for _, u, _, _ in seq))
for name, us, g, b in seq:
    print("%9.1f us  %s  grid %s block %s" % (us, name, g, b))
print("--- by name")
for name, us in sorted(total.items(), key=lambda kv: -kv[1]):
    print("%9.1f us  %s" % (us, name))
PY
  tail -3 /tmp/ncu.err
}
for step in $STEPS; do
  case $step in
    check)  # the CUDA path reproduces the reference output
      $A import .gpu/ref/udnie -o /tmp/udnie.safetensors --overwrite; mkdir -p /tmp/check
      for v in default ATELIER_TF32=0; do
        echo "check [$v]"
        env $([ $v = default ] || echo "$v" | tr , ' ') $A stylize .gpu/ref/chicago.png --style /tmp/udnie.safetensors --device cuda \
          -o "/tmp/check/chicago_udnie_cuda_${v//[=,]/_}.png" --overwrite 2>&1 | tail -2
      done
      python3 - /tmp/check <<'PY' 2>&1 | tee -a "$OUT/gpu.txt"
import sys, glob, math
import torch
from torchvision.io import read_image, ImageReadMode
load = lambda p: read_image(p, mode=ImageReadMode.RGB).double()
ref = load('.gpu/ref/chicago_udnie.png')
for p in sorted(glob.glob(sys.argv[1] + '/chicago_udnie_cuda_*.png')):
    a = load(p)  # fast-style-transfer rounds odd sizes up: compare the rows both have
    mse = ((a - ref[:, :a.shape[1], :a.shape[2]]) ** 2).mean().item()
    print(p.split('/')[-1], 'PSNR %.1f dB' % (10 * math.log10(255 ** 2 / mse) if mse > 0 else float('inf')))
PY
      ;;
    convcheck)  # the cuDNN conv op against candle's CPU conv2d in f64
      if [ -e .gpu/cuda_check.xz ]; then
        xz -dc .gpu/cuda_check.xz > /tmp/cuda_check && chmod +x /tmp/cuda_check
        for v in default ATELIER_TF32=0; do
          echo "convcheck [$v]"; env $([ $v = default ] || echo "$v") /tmp/cuda_check 2>&1 | tee -a "$OUT/convcheck.txt"
        done
      fi ;;
    bench)  # ROUNDS=N repeats base and new builds alternately, each a fresh process; which goes
            # first swaps every round (ABBA…), so an order effect cannot pass for a difference
      base_bench() {
        if [ "${BASE:-0}" = 1 ] && [ -e .gpu/atelier-base.xz ]; then
          [ -x /tmp/atelier-base ] || { xz -dc .gpu/atelier-base.xz > /tmp/atelier-base && chmod +x /tmp/atelier-base; }
          echo "bench [base build] round $round" | tee -a "$OUT/atelier_bench.txt"
          /tmp/atelier-base bench --device cuda --json --vgg $VGG $QUALITY ${BASE_ARGS:-${BENCH_ARGS:-}} 2>&1 | tail -1 | tee -a "$OUT/atelier_bench.txt"
        fi
      }
      new_bench() {
        for v in ${BENCH_VARIANTS:-default}; do
          echo "bench [$v] round $round" | tee -a "$OUT/atelier_bench.txt"
          env $([ $v = default ] || echo "$v" | tr , ' ') $A bench --device cuda --json --vgg $VGG $QUALITY ${BENCH_ARGS:-} 2>&1 | tail -1 | tee -a "$OUT/atelier_bench.txt"
        done
      }
      for round in $(seq 1 ${ROUNDS:-1}); do
        if [ $((round % 2)) = 1 ]; then base_bench; new_bench; else new_bench; base_bench; fi
      done ;;
    torch)
      python3 .gpu/pytorch_reference.py --vgg $VGG 2>&1 | tail -3 | tee -a "$OUT/pytorch.txt" ;;
    compiled)  # the strongest PyTorch: compile waits reported apart from the timings
      echo "compiled:" >> "$OUT/pytorch.txt"
      PYTHONUNBUFFERED=1 timeout ${COMPILED_TIMEOUT:-300} python3 .gpu/pytorch_compiled.py --vgg $VGG ${COMPILED_ARGS:-} 2>&1 \
        | grep -v Warning | tail -4 | tee -a "$OUT/pytorch.txt" ;;
    instant)
      $A bench --variant arbitrary --device cuda --sizes 1024,3840x2160 --precision f16,f32 --json \
        $QUALITY 2>&1 | tail -3 | tee -a "$OUT/instant.txt"
      $A stylize assets/examples/$(ls assets/examples | head -1) --style-image .gpu/styles/$(ls .gpu/styles | head -1) \
        --device cuda -o /tmp/instant_out.png --overwrite 2>&1 | tail -2 | tee -a "$OUT/instant.txt"
      python3 -c 'import sys; from PIL import Image; i = Image.open(sys.argv[1]); print("instant output", i.size, "extrema", i.getextrema())' \
        /tmp/instant_out.png 2>&1 | tee -a "$OUT/instant.txt" ;;
    train)
      S=${TRAIN_STYLE:-starry_night}
      rm -rf /tmp/run-$S  # a warm machine keeps /tmp between calls
      timeout ${TRAIN_TIMEOUT:-420} $A train --device cuda --style-image .gpu/styles/$S.jpg --content-dir .gpu/train --out /tmp/run-$S \
        --name "$S" --iterations ${TRAIN_ITERS:-3000} --vgg $VGG --no-install ${TRAIN_ARGS:-} 2>&1 | tr '\r' '\n' | tail -5
      cp /tmp/run-$S/*.safetensors "$OUT/" 2>/dev/null; rm -f "$OUT/checkpoint.safetensors"
      cp /tmp/run-$S/metrics.jsonl "$OUT/metrics-$S.jsonl"; cp /tmp/run-$S/config.json "$OUT/config-$S.json" ;;
    ncu)  # GPU time of every kernel of one forward pass at NCU_SIZE (default 1024), by name
      ATELIER_NCU=1 ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv \
        $A bench --device cuda --sizes ${NCU_SIZE:-1024} --runs 2 --warmup 1 --train-iters 0 \
        --precision ${NCU_PRECISION:-f16} --quality-model /nonexistent > /tmp/ncu.csv 2>/tmp/ncu.err
      ncu_table ncu.txt ;;
    ncutrain)  # the same for one training step (batch 4, 256²): GPU-busy time against the step's wall time
      ATELIER_NCU=train ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv \
        $A bench --device cuda --sizes 64 --runs 1 --warmup 1 --train-iters 3 --vgg $VGG \
        --quality-model /nonexistent > /tmp/ncu.csv 2>/tmp/ncu.err
      ncu_table ncu-train.txt ;;
    video)  # frames/s of `atelier video` at 1920x1080, decode + stylise + encode
      mkdir -p /tmp/ffbin && xz -dc .gpu/video/ffmpeg.xz > /tmp/ffbin/ffmpeg && chmod +x /tmp/ffbin/ffmpeg
      # No ffprobe on this machine: answer for the packed clip with what the real ffprobe said
      # about it when it was packed (decoding and encoding use the real ffmpeg).
      J=$(pwd)/.gpu/video/fox1080.ffprobe.json
      printf '#!/bin/sh\nfor a; do last=$a; done\ncase "$last" in *fox1080*.mp4) cat %s;; *) echo "no ffprobe here" >&2; exit 1;; esac\n' "$J" > /tmp/ffbin/ffprobe
      chmod +x /tmp/ffbin/ffprobe
      for v in ${VIDEO_VARIANTS:-default ATELIER_PRECISION=f32}; do
        echo "video [$v]" | tee -a "$OUT/video.txt"
        TIMEFORMAT="wall %R s"; time env PATH=/tmp/ffbin:$PATH $([ $v = default ] || echo "$v" | tr , ' ') \
          $A video .gpu/video/fox1080.mp4 -o /tmp/fox1080_out.mp4 --style models/starry_night.safetensors \
          --device cuda --overwrite ${VIDEO_ARGS:-} 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -4 | tee -a "$OUT/video.txt"
      done
      env PATH=/tmp/ffbin:$PATH ffmpeg -v error -i /tmp/fox1080_out.mp4 -f null - 2>&1 | tail -2 | tee -a "$OUT/video.txt"
      ;;
  esac
done
