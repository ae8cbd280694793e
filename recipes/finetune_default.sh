#!/usr/bin/env bash
# The shipped default classifier: the shipped language model (default_model/frozen/model)
# fine-tuned on SST-2 with a head on its mean-pooled cell states, then installed as the package
# default in bf16. About 9 minutes on one core of a 2-core CPU with bf16 units (docs/results.md).
#
#   DATA=../shared/data RUNS=/tmp/runs recipes/finetune_default.sh     # rerun after a stop: it resumes
#
# Everything but the installed default goes under $RUNS (outside the repository).
set -euo pipefail
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-./experiments}
SD=${SD:-sentiment-discovery}
PRETRAINED=${PRETRAINED:-src/sentiment_discovery/default_model/frozen/model}
RUN="$RUNS/sst2_finetuned/finetune"

# Head from an L2 probe on the mean-pooled cells (C on dev), then every weight: Adam 2e-4 (LM) /
# 3e-4 (head), warm-up over 10 % of the updates then linear decay to 0, 2 epochs of batch 32,
# dropout 0.2 on the pooled features, an auxiliary next-byte loss of weight 0.3, best dev
# accuracy kept (evaluated every quarter epoch). Test is only reported.
resume=()
[[ -f "$RUN/checkpoint/state.json" ]] && resume=(--resume)
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} $SD finetune -load_model "$PRETRAINED" \
  -train "$DATA/sst2/train.csv" -valid "$DATA/sst2/dev.csv" -test "$DATA/sst2/test.csv" \
  -experiment_dir "$RUNS" -experiment_name sst2_finetuned \
  -pooling mean -head_init probe -lr 2e-4 -head_lr 3e-4 -warmup 0.1 -decay linear -dropout 0.2 \
  -lm_loss_weight 0.3 -epochs 2 -batch_size 32 -clip 1 -eval_every 0.25 -patience 4 -precision auto \
  -seed 1234 "${resume[@]}"

# Install it as the default (model/, classifier/, sentiment_unit.json), weights stored in bf16.
# What users then get from the stored weights: python benchmarks/default_classifier_check.py
$SD export-default --model "$RUN/model" --classifier "$RUN" --bf16
