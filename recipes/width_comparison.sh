#!/usr/bin/env bash
# The measurement behind the default model's width: H=512 and H=1,024 trained from scratch for
# about the same time on one core (~37 min each), with stage 1's recipe otherwise (64 x 256
# bytes per update, Adam 1.5e-3 decayed linearly to 0 over the run, bf16, seed 1234), then the
# same SST-2 transfer with mean pooling on each. Needs the corpus that laptop_mlstm.sh builds.
#
#   DATA=../shared/data RUNS=/tmp/runs recipes/width_comparison.sh
#
# The update counts fit ~37 min at the speeds measured on the 2-core development VM (docs/results.md).
set -euo pipefail
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-./experiments}
SD=${SD:-sentiment-discovery}

train_and_transfer() {  # name, units, updates
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} $SD train -train "$RUNS/reviews.corpus" \
    -experiment_dir "$RUNS" -experiment_name "$1" -model_dir model \
    -rnn_type mlstm -rnn_size "$2" -embed_size 64 -layers 1 -weight_norm -lstm_only -dropout 0 \
    -persist_state 0 -shuffle -batch_size 64 -seq_length 256 \
    --optimizer_type=Adam -lr 0.0015 -lr_scheduler LinearLR -clip 1 -max_iters "$3" \
    -save_iters 100000 -keep_iters 0 -log_iters 25 -precision bf16 -seed 1234 --resume
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} $SD transfer -experiment_dir "$RUNS" -experiment_name "$1_sst2" \
    -load_model "$RUNS/$1/model/iter$3" -precision bf16 -pooling mean -no_data_efficiency \
    -train "$DATA/sst2/train.csv" -valid "$DATA/sst2/dev.csv" -test "$DATA/sst2/test.csv" \
    -text_key sentence -label_key label
}

train_and_transfer width512 512 2000
train_and_transfer width1024 1024 800
