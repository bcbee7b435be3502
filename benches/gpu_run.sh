#!/usr/bin/env bash
# Runs on the GPU machine (see benches/gpu_pack.sh): a CUDA conformance check, our
# benchmark and the PyTorch baseline, in one call so both numbers come from one card.
# Results go to $OUT.
set -u
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
export ATELIER_DATA_DIR=/tmp/atelier-data
A=/tmp/atelier
xz -dc .gpu/atelier.xz > $A && chmod +x $A
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
$A import .gpu/ref/udnie -o /tmp/udnie.safetensors --overwrite
$A import .gpu/ref/wave.pth -o /tmp/wave.safetensors --overwrite
$A stylize .gpu/ref/chicago.png --style /tmp/udnie.safetensors --device cuda -o "$OUT/chicago_udnie_cuda.png" --overwrite
$A stylize .gpu/ref/amber.png --style /tmp/wave.safetensors --device cuda -o "$OUT/amber_wave_cuda.png" --overwrite
$A bench --device cuda --json ${BENCH_ARGS:-} 2>&1 | tee "$OUT/atelier_bench.txt"
python3 .gpu/pytorch_reference.py --vgg .gpu/vgg16.safetensors 2>&1 | tail -5 | tee "$OUT/pytorch.txt"
