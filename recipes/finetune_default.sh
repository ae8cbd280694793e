#!/usr/bin/env bash
# The shipped default classifier, in two fine-tuning stages from the shipped language model
# (default_model/frozen/model), then installed as the package default in bf16:
#   1. on 18,000 labelled reviews (10,000 IMDB train + 8,000 Amazon; recipes/review_mix.py), cut
#      to 256 bytes (first and last 128), one epoch, kept on 1,000 other IMDB reviews;
#   2. from that model, on SST-2 train, kept on SST-2 dev (test is only reported).
# About 50 + 15 minutes on one core of a 2-core AMD EPYC (Zen 5, bf16 units), docs/results.md.
#
#   DATA=../shared/data RUNS=/tmp/runs recipes/finetune_default.sh     # rerun after a stop: it resumes
#
# Everything but the installed default goes under $RUNS (outside the repository).
set -euo pipefail
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-./experiments}
SD=${SD:-sentiment-discovery}
PYTHON=${PYTHON:-python}
PRETRAINED=${PRETRAINED:-src/sentiment_discovery/default_model/frozen/model}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# Both stages: the head starts from an L2 probe on the mean-pooled cells (C on validation), then
# every weight: Adam 2e-4 (LM) / 3e-4 (head), warm-up over 10 % of the updates then linear decay
# to 0, batch 32, dropout 0.2 on the pooled features, an auxiliary next-byte loss of weight 0.3,
# the best validation accuracy kept.
COMMON=(-pooling mean -head_init probe -lr 2e-4 -head_lr 3e-4 -warmup 0.1 -decay linear -dropout 0.2
        -lm_loss_weight 0.3 -batch_size 32 -clip 1 -patience 4 -precision auto -seed 1234)
resume_flag() { [[ -f "$1/checkpoint/state.json" ]] && echo --resume || true; }

REVIEWS="$RUNS/review_mix"
[[ -f "$REVIEWS/imdb_test.csv" ]] || SENTIMENT_DISCOVERY_DATA="$DATA" $PYTHON recipes/review_mix.py --out "$REVIEWS"
STAGE1="$RUNS/reviews_finetuned/finetune"
[[ -f "$STAGE1/results.json" ]] || $SD finetune -load_model "$PRETRAINED" \
  -train "$REVIEWS/reviews_train.csv" -valid "$REVIEWS/imdb_valid.csv" -test "$REVIEWS/imdb_test.csv" -text_key text \
  -max_text_length 256 -epochs 1 -eval_every 0.1 \
  -experiment_dir "$RUNS" -experiment_name reviews_finetuned "${COMMON[@]}" $(resume_flag "$STAGE1")

STAGE2="$RUNS/reviews_then_sst2/finetune"
$SD finetune -load_model "$STAGE1/model" \
  -train "$DATA/sst2/train.csv" -valid "$DATA/sst2/dev.csv" -test "$DATA/sst2/test.csv" \
  -epochs 2 -eval_every 0.25 \
  -experiment_dir "$RUNS" -experiment_name reviews_then_sst2 "${COMMON[@]}" $(resume_flag "$STAGE2")

# Install it as the default (model/, classifier/, sentiment_unit.json), weights stored in bf16.
# What users then get from the stored weights: python benchmarks/default_classifier_check.py
$SD export-default --model "$STAGE2/model" --classifier "$STAGE2" --bf16
