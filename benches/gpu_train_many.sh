#!/usr/bin/env bash
# Runs on the GPU machine (pack first with `STYLES=all EVAL_DATA=1 benches/gpu_pack.sh`): trains
# several styles at once on one GPU and measures each with `atelier eval` on the held-out photos.
#
#   bash .gpu/gpu_train_many.sh JOBS
# JOBS: one run per line, `NAME PAINTING [atelier train arguments...]`, PAINTING a file in
# .gpu/styles/ (e.g. `wave_s10 wave.jpg --strength 10`); `#` starts a comment.
#   PARALLEL=1      trainings sharing the GPU at once (measured: the step is GPU-bound, and eight at
#                   once under MPS trained slower in total than one alone; docs/benchmarks.md)
#   ITERS=3000      iterations per run (a job's own --iterations wins)
#   EVAL=1          evaluate every model (0: skip)
#   SOLO=NAME       first train NAME alone, to time one run without neighbours
#   DEADLINE=480    seconds after which unfinished trainings are stopped (eval and packing still run)
#   TORCH=1         first time pytorch_reference.py (the PyTorch baseline) in the same call
# Results in $OUT: results.jsonl (per run: seconds, iterations/s, eval scores), log.txt, the
# models as models.tar.part-* (split under the device tool's 16 MiB per file) and
# runs.tar (metrics.jsonl and config.json of each run).
set -u
JOBS=${1:?usage: gpu_train_many.sh JOBS}
CUDNN_DIR=$(python3 -c 'import os, nvidia.cudnn as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null)
[ -e "$CUDNN_DIR/libcudnn.so.9" ] || CUDNN_DIR=$(dirname "$(find / -name 'libcudnn.so.9' -not -path '/proc/*' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib64:$CUDNN_DIR:${LD_LIBRARY_PATH:-}
export ATELIER_DATA_DIR=/tmp/atelier-data
A=/tmp/atelier
xz -dc .gpu/atelier.xz > $A && chmod +x $A
ITERS=${ITERS:-3000}
PARALLEL=${PARALLEL:-1}
R=/tmp/runs
rm -rf $R && mkdir -p $R
LOG=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$LOG"
nproc | sed 's/^/cpus: /' | tee -a "$LOG"
# MPS=1: let the kernels of several processes run side by side instead of time-sliced.
if command -v nvidia-cuda-mps-control >/dev/null && [ "${MPS:-0}" = 1 ]; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  nvidia-cuda-mps-control -d && echo "mps: on" | tee -a "$LOG"
else
  echo "mps: off" | tee -a "$LOG"
fi

train_one() {
  local name=$1 painting=$2; shift 2
  local t0=$(date +%s.%N)
  # A job's own --iterations replaces ITERS (clap refuses a flag given twice).
  local iters=(--iterations "$ITERS")
  [[ " $* " == *" --iterations "* ]] && iters=()
  $A train --device cuda --style-image ".gpu/styles/$painting" --content-dir .gpu/train \
    --out "$R/$name" --name "$name" "${iters[@]}" --no-install --preview-every 0 "$@" \
    > "$R/$name.log" 2>&1
  local rc=$? t1=$(date +%s.%N)
  echo "$name $painting $rc $(awk "BEGIN{print $t1 - $t0}")" >> $R/times.txt
  tail -c 300 "$R/$name.log" | tr '\r' '\n' | tail -2 | sed "s/^/$name: /" >> "$LOG"
}
export -f train_one
export A R ITERS LOG

grep -v '^\s*#' "$JOBS" | grep -v '^\s*$' > $R/jobs.txt
if [ "${TORCH:-0}" = 1 ]; then
  python3 .gpu/pytorch_reference.py --vgg models/vgg16-imagenet-keras-conv1_1-conv5_3.f16.safetensors 2>&1 | tail -1 | tee "$OUT/pytorch.txt"
fi
T0=$(date +%s.%N)
if [ -n "${SOLO:-}" ]; then
  line=$(grep "^$SOLO " $R/jobs.txt)
  bash -c "train_one $line"
  grep -v "^$SOLO " $R/jobs.txt > $R/rest.txt && mv $R/rest.txt $R/jobs.txt
fi
timeout "${DEADLINE:-100000}" xargs -P "$PARALLEL" -L 1 bash -c 'train_one "$@"' _ < $R/jobs.txt
T1=$(date +%s.%N)
echo "all trainings: $(awk "BEGIN{print $T1 - $T0}") s" | tee -a "$LOG"
command -v nvidia-cuda-mps-control >/dev/null && echo quit | nvidia-cuda-mps-control 2>/dev/null

# One JSON line per run: timing, final losses, eval scores.
while read -r name painting rc secs; do
  m="$R/$name/$name.safetensors"
  ev=null
  if [ "${EVAL:-1}" = 1 ] && [ -e "$m" ]; then
    ev=$($A eval "$m" --photos .gpu/eval --painting ".gpu/styles/$painting" --device cuda --json 2>>"$LOG" | tr -d '\n')
  fi
  last=$(tail -1 "$R/$name/metrics.jsonl" 2>/dev/null)
  echo "{\"name\":\"$name\",\"painting\":\"$painting\",\"rc\":$rc,\"seconds\":$secs,\"last\":${last:-null},\"eval\":${ev:-null}}" >> "$OUT/results.jsonl"
done < $R/times.txt
# Finished models only (a checkpoint is 20 MB of f32 weights and Adam moments).
(cd $R && ls */*.safetensors | grep -v '/checkpoint.safetensors$' | tar cf - -T - | split -b 15M - "$OUT/models.tar.part-")
(cd $R && tar cf "$OUT/runs.tar" */metrics.jsonl */config.json *.log)
ls -la $OUT | tee -a "$LOG"
