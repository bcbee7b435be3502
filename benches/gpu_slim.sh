#!/usr/bin/env bash
# The device tool copies the whole working tree (plus carried paths) and refuses more than 64 MiB.
# `benches/gpu_slim.sh out` moves the tracked files a GPU call rarely needs — the gallery's models,
# the instant-style network, docs/images — to a stash outside the tree; `benches/gpu_slim.sh back`
# puts them back (and `git checkout -- models docs` restores them from git if the stash is lost).
#   KEEP="starry_night magenta"   models to leave in place (names without .safetensors;
#                                 `magenta` keeps models/instant/)
#   STASH=/tmp/atelier-slim       where the files wait
#   NO_EXAMPLES=1                 also assets/examples (training calls need no example photos;
#                                 `atelier bench`'s quality check and the `instant` step do)
# The VGG16 (models/vgg16-*) always stays: training and `atelier bench` read it.
set -euo pipefail
cd "$(dirname "$0")/.."
STASH=${STASH:-/tmp/atelier-slim}
case "${1:-}" in
  out)
    mkdir -p "$STASH/models" "$STASH/docs"
    for m in models/*.safetensors; do
      n=$(basename "$m" .safetensors)
      case "$n" in vgg16-*) continue ;; esac
      [[ " ${KEEP:-} " == *" $n "* ]] || mv "$m" "$STASH/models/"
    done
    [[ " ${KEEP:-} " == *" magenta "* ]] || { [ -d models/instant ] && mv models/instant "$STASH/models/"; }
    [ -d docs/images ] && mv docs/images "$STASH/docs/"
    if [ "${NO_EXAMPLES:-0}" = 1 ] && [ -d assets/examples ]; then
      mkdir -p "$STASH/assets" && mv assets/examples "$STASH/assets/"
    fi
    du -sh --exclude=.git --exclude=target . ;;
  back)
    [ -d "$STASH" ] || { echo "nothing stashed in $STASH" >&2; exit 0; }
    for m in "$STASH"/models/*.safetensors; do [ -e "$m" ] && mv -n "$m" models/; done
    [ -d "$STASH/models/instant" ] && [ ! -e models/instant ] && mv "$STASH/models/instant" models/
    [ -d "$STASH/docs/images" ] && [ ! -e docs/images ] && mv "$STASH/docs/images" docs/
    [ -d "$STASH/assets/examples" ] && [ ! -e assets/examples ] && mv "$STASH/assets/examples" assets/
    rmdir "$STASH/models" "$STASH/docs" "$STASH/assets" "$STASH" 2>/dev/null || true
    git status --short models docs | head ;;
  *) echo "usage: benches/gpu_slim.sh out|back" >&2; exit 2 ;;
esac
