#!/usr/bin/env bash
# Runs on the GPU machine (see benches/gpu_pack.sh). Results go to $OUT.
#   STEPS="check bench torch train"   which parts to run (default: check bench torch)
#   TRAIN_STYLE=starry_night TRAIN_ITERS=3000 TRAIN_ARGS="--style-weight 2e6"
set -u
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
export ATELIER_DATA_DIR=/tmp/atelier-data
A=/tmp/atelier
xz -dc .gpu/atelier.xz > $A && chmod +x $A
STEPS=${STEPS:-check bench torch}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
for step in $STEPS; do
  case $step in
    check)  # the CUDA path reproduces the reference output
      $A import .gpu/ref/udnie -o /tmp/udnie.safetensors --overwrite
      $A stylize .gpu/ref/chicago.png --style /tmp/udnie.safetensors --device cuda -o "$OUT/chicago_udnie_cuda.png" --overwrite 2>&1 | tail -2 ;;
    bench)
      $A bench --device cuda --json --vgg models/vgg16-imagenet-keras-conv1_1-relu4_3.f16.safetensors ${BENCH_ARGS:-} 2>&1 | tail -4 | tee "$OUT/atelier_bench.txt" ;;
    torch)
      python3 .gpu/pytorch_reference.py --vgg models/vgg16-imagenet-keras-conv1_1-relu4_3.f16.safetensors 2>&1 | tail -3 | tee "$OUT/pytorch.txt" ;;
    train)
      S=${TRAIN_STYLE:-starry_night}
      timeout ${TRAIN_TIMEOUT:-420} $A train --device cuda --style-image .gpu/styles/$S.jpg --content-dir .gpu/train --out /tmp/run-$S \
        --name "$S" --iterations ${TRAIN_ITERS:-3000} --vgg models/vgg16-imagenet-keras-conv1_1-relu4_3.f16.safetensors --no-install ${TRAIN_ARGS:-} 2>&1 | tr '\r' '\n' | tail -5
      cp /tmp/run-$S/*.safetensors "$OUT/" 2>/dev/null; rm -f "$OUT/checkpoint.safetensors"
      cp /tmp/run-$S/metrics.jsonl "$OUT/metrics-$S.jsonl"; cp /tmp/run-$S/config.json "$OUT/config-$S.json" ;;
  esac
done
