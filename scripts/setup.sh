#!/usr/bin/env bash
# One-shot set-up on a fresh Debian machine (run as root, or with sudo available): installs the system
# packages the project uses when they are missing (OpenBLAS for the native addon, Fashion-MNIST for the
# demo and data tests, small English text corpora for LM pretraining, ffmpeg to decode video files,
# libjpeg-turbo's cjpeg/djpeg for the JPEG decoder test,
# Chromium for the playground's browser test), then `npm ci`, which builds the
# native addon through the package's install script. Safe to run again: it skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

apt_packages=()
if [[ ! -f /usr/include/x86_64-linux-gnu/cblas.h ]] || ! ls /usr/lib/x86_64-linux-gnu/libopenblas.so* >/dev/null 2>&1; then
  apt_packages+=(libopenblas-dev)
fi
[[ -d /usr/share/datasets/fashion-mnist ]] || apt_packages+=(dataset-fashion-mnist)
[[ -d /usr/share/games/fortunes ]] || apt_packages+=(fortunes-min)
[[ -d /usr/share/wordnet ]] || apt_packages+=(wordnet-base)
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || apt_packages+=(ffmpeg)
[[ -x /usr/bin/chromium ]] || apt_packages+=(chromium)
# cjpeg/djpeg: the JPEG decoder test compares against libjpeg-turbo's own output
command -v djpeg >/dev/null 2>&1 && command -v cjpeg >/dev/null 2>&1 || apt_packages+=(libjpeg-turbo-progs)
if (( ${#apt_packages[@]} > 0 )); then
  echo "setup: installing ${apt_packages[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update
  "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${apt_packages[@]}" </dev/null
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci </dev/null
fi
