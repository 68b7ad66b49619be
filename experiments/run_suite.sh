#!/usr/bin/env bash
# The benchmark-protocol table of docs/RESULTS.md: synthetic stand-ins of Sintel, KITTI, Bonn,
# ScanNet and NYUv2 (made to the lengths and, for NYUv2, the frame size the presets need), scored
# with `vda eval --suite` under the official presets. Needs the experiment 1b checkpoints
# (experiments/run_official.sh). About 6 minutes on 2 CPU cores; prepared sets are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
VDA=${VDA:-.venv/bin/vda}
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$PWD/runs/experiments/mlruns.db}
bench=runs/experiments/bench

prepare() {  # name sequences frames height width seed
  test -f "$bench/$1/manifest.json" || $VDA prepare --dst "$bench/$1" dataset="$1" chunk_frames=64 \
    synthetic.sequences="$2" synthetic.frames="$3" synthetic.height="$4" synthetic.width="$5" \
    synthetic.seed="$6"
}
prepare sintel 3 50 56 84 3      # official-110 scores Sintel's whole (<= 50-frame) sequences
prepare kitti 2 150 56 84 4      # official-500: every frame up to 500
prepare bonn 2 150 56 84 5
prepare scannet 2 200 64 84 6    # official-500 and official-tae (frames 10-179 of 0-191)
prepare nyuv2 1 40 480 640 7     # NYUv2's crop (45:471, 41:601) needs the full 480 x 640 frame

$VDA eval --suite experiments/suite_synthetic.yaml
