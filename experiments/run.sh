#!/usr/bin/env bash
# Regenerates every number and plot in docs/RESULTS.md (about 25 minutes on 2 CPU cores).
# Reruns skip finished work: prepared data sets, finished training runs and sweep trials.
set -euo pipefail
cd "$(dirname "$0")/.."
VDA=${VDA:-.venv/bin/vda}
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$PWD/runs/experiments/mlruns.db}
mkdir -p runs/experiments

for set in train heldout long; do
  test -f runs/experiments/data/$set/manifest.json || $VDA prepare --config experiments/prepare_$set.yaml
done

# 1. temporal loss; 3. diff-CNN (same budget, TGM official)
train() { $VDA train --config experiments/train_base.yaml --name "$@"; }
train exp1-ssi loss.tgm_weight=0.0
train exp1-tgm-official loss.tgm_variant=official
train exp1-tgm-paper loss.tgm_variant=paper
train exp3-diffcnn model.temporal_diff=diff_cnn
# repeats with another seed: how far apart two runs of one setting land (the noise)
train exp1-ssi-seed1 loss.tgm_weight=0.0 seed=1
train exp1-tgm-official-seed1 loss.tgm_variant=official seed=1

for run in exp1-ssi exp1-tgm-official exp1-tgm-paper exp3-diffcnn exp1-ssi-seed1 exp1-tgm-official-seed1; do
  $VDA eval --config experiments/eval_heldout.yaml --name "$run" \
    --checkpoint "runs/experiments/checkpoints/$run"
done

# 2. long-video strategies, with the model of the TGM (official) run
$VDA eval --config experiments/eval_long.yaml --name exp2-long \
  --checkpoint runs/experiments/checkpoints/exp1-tgm-official

# 4. the sweep
$VDA tune --config experiments/sweep.yaml

.venv/bin/python -m vda.platform.eval.summary runs/experiments docs
