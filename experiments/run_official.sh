#!/usr/bin/env bash
# Experiment 1 under the official loss defaults, and with pseudo-labelled images mixed in
# (docs/RESULTS.md, experiment 1b; about 25 minutes on 2 CPU cores; reruns skip finished work).
set -euo pipefail
cd "$(dirname "$0")/.."
VDA=${VDA:-.venv/bin/vda}
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$PWD/runs/experiments/mlruns.db}
mkdir -p runs/experiments

for set in train heldout; do
  test -f runs/experiments/data/$set/manifest.json || $VDA prepare --config experiments/prepare_$set.yaml
done

train() { $VDA train --config experiments/train_official.yaml --name "$@"; }
train exp1o-ssi loss.tgm_weight=0.0
train exp1o-tgm
train exp1o-ssi-seed1 loss.tgm_weight=0.0 seed=1
train exp1o-tgm-seed1 seed=1

# unlabeled images (frames of other synthetic rooms, no depth kept), labelled by the
# exp1o-tgm model as teacher, then mixed 1:1 with the video clips
images=runs/experiments/images
if [ ! -d "$images" ]; then
  .venv/bin/python - "$images" <<'PY'
import sys
from pathlib import Path

import cv2

from vda.platform.data.synthetic import SyntheticConfig, SyntheticScene

out = Path(sys.argv[1])
out.mkdir(parents=True)
for scene in range(12):
    frames = SyntheticScene(SyntheticConfig(frames=48, height=56, width=84), seed=5000 + scene).frames()
    for index, frame in enumerate(frames):
        if index % 4 == 0:  # 12 images a room, 144 in all
            cv2.imwrite(str(out / f"room{scene:02d}_{index:02d}.png"), frame.rgb[..., ::-1])
PY
fi
teacher=$(ls -d runs/experiments/checkpoints/exp1o-tgm/checkpoint_2* | sort | tail -1)/checkpoint.pt
$VDA pseudolabel --input "$images" --output runs/experiments/data/pseudo --teacher "$teacher" \
  input_size=56 actors.cpus_per_actor=1
train exp1o-tgm-pseudo data.val=runs/experiments/data/train \
  'data.sources=[{name: video, path: runs/experiments/data/train}, {name: pseudo, path: runs/experiments/data/pseudo, clip_len: 1}]'

for run in exp1o-ssi exp1o-tgm exp1o-ssi-seed1 exp1o-tgm-seed1 exp1o-tgm-pseudo; do
  $VDA eval --config experiments/eval_heldout.yaml --name "$run" \
    --checkpoint "runs/experiments/checkpoints/$run"
done
# only table 1b: the full summary would rewrite docs/results from whatever runs this machine has
.venv/bin/python -c 'from pathlib import Path; from vda.platform.eval.summary import EXP1_OFFICIAL, _model_table; print("\n".join(_model_table(Path("runs/experiments"), EXP1_OFFICIAL)))'
