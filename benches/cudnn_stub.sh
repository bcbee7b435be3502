#!/usr/bin/env bash
# Link-time stub of cuDNN 9 for `cargo build --features cudnn` on a machine without cuDNN.
#
# candle's `cudnn` feature makes cudarc link `-lcudnn` (dynamic linking). The build needs no cuDNN
# headers (cudarc ships its own bindings), only a libcudnn.so to link against; the real library is
# loaded at run time on the GPU machine (PyTorch's copy: benches/gpu_run.sh puts it on
# LD_LIBRARY_PATH). This script writes a stub with every cudnn* entry point cudarc declares and the
# real soname (libcudnn.so.9) into DIR/lib (default target/cudnn-stub), then prints the CUDNN_LIB
# value to build with:
#   export CUDNN_LIB=$(bash benches/cudnn_stub.sh)
#   cargo build --release --features cudnn --target-dir target/cuda
# cudarc's build script searches $CUDNN_LIB/lib (and the CUDA_* roots) for libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mkdir -p "${1:-target/cudnn-stub}/lib" && cd "${1:-target/cudnn-stub}" && pwd)
# cudarc's sources must be on disk to read its bindings: on a fresh machine nothing is fetched yet.
cargo fetch --quiet >&2
SYS=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/cudnn/sys/mod.rs | tail -1)
[ -n "$SYS" ] || { echo "cudnn_stub: cudarc 0.19 sources not found after cargo fetch" >&2; exit 1; }
if [ ! -e "$OUT/lib/libcudnn.so" ]; then
  grep -oE 'pub unsafe fn cudnn[A-Za-z0-9_]+' "$SYS" | awk '{print $4}' | sort -u |
    awk '{print "void " $1 "(void){}"}' > "$OUT/cudnn_stub.c"
  gcc -shared -fPIC -o "$OUT/lib/libcudnn.so" "$OUT/cudnn_stub.c" -Wl,-soname,libcudnn.so.9 >&2
fi
echo "$OUT"
