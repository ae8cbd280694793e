#!/usr/bin/env bash
# The shipped default classifier, from the shipped pre-trained language model (default_model/frozen/model),
# in one command:
#   1. the multi-domain training, selection and report files (recipes/domain_mix.py): SST-2 train, IMDB
#      reviews and sentences, Amazon reviews, titles and sentences; a held-out selection part of each domain;
#   2. one fine-tuning run on the mixture, the weights kept by the mean validation accuracy over the six
#      selection domains (-domain_key domain), never a test set;
#   3. calibrate: the n-gram part fitted on the same training texts and kept only where the blend beats both
#      of its parts alone on the selection texts; a temperature fitted on them;
#   4. installed as the package default (weights stored in bf16).
# About 1 h 10 min on one core of a 2-core AMD EPYC (Zen 3, no native bf16) shared with other jobs
# (docs/results.md, "The default classifier across domains").
#
#   DATA=../shared/data RUNS=/tmp/runs recipes/finetune_default.sh     # rerun after a stop: it resumes
#
# Everything but the installed default goes under $RUNS (outside the repository). The report table:
#   python benchmarks/default_classifier_report.py --mix $RUNS/domain_mix --markdown report.md
set -euo pipefail
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-./experiments}
SD=${SD:-sentiment-discovery}
PYTHON=${PYTHON:-python}
PRETRAINED=${PRETRAINED:-src/sentiment_discovery/default_model/frozen/model}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

MIX="$RUNS/domain_mix"
[[ -f "$MIX/manifest.json" ]] || $PYTHON recipes/domain_mix.py --data "$DATA" --out "$MIX"

# The head starts from an L2 probe on the mean-pooled cells (C on validation), then every weight: Adam 2e-4
# (LM) / 3e-4 (head), warm-up over 10 % of the updates then linear decay to 0, batch 32, dropout 0.2 on the
# pooled features, an auxiliary next-byte loss of weight 0.3, texts cut to 256 bytes (first and last 128).
RUN="$RUNS/mix/finetune"
resume=$([[ -f "$RUN/checkpoint/state.json" ]] && echo --resume || true)
[[ -f "$RUN/results.json" ]] || $SD finetune -load_model "$PRETRAINED" \
  -train "$MIX/train.csv" -valid "$MIX/select.csv" -domain_key domain -text_key text \
  -max_text_length 256 -epochs 1 -eval_every 0.1 \
  -pooling mean -head_init probe -lr 2e-4 -head_lr 3e-4 -warmup 0.1 -decay linear -dropout 0.2 \
  -lm_loss_weight 0.3 -batch_size 32 -clip 1 -patience 4 -precision auto -seed 1234 \
  -experiment_dir "$RUNS" -experiment_name mix $resume

CALIBRATED="$RUNS/mix/calibrated"
[[ -f "$CALIBRATED/classifier.json" ]] || $SD calibrate -classifier "$RUN" \
  -valid "$MIX/select.csv" -domain_key domain -ngrams -train "$MIX/train.csv" -text_key text -out "$CALIBRATED"

# Install it as the default (model/, classifier/, sentiment_unit.json), weights stored in bf16.
$SD export-default --model "$CALIBRATED/model" --classifier "$CALIBRATED" --bf16
