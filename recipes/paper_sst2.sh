#!/usr/bin/env bash
# The paper's SST-2 result in a few commands (Radford et al. 2017, section 4 and figure 3):
# OpenAI's released 4,096-unit mLSTM, the final cell state of each sentence as its features, an
# L1-penalised logistic regression with C chosen on the dev set, the 2017 result lines, the
# sentiment unit's histogram and a heatmap of it over a review.
#
#   RUNS=/tmp/paper recipes/paper_sst2.sh                    # downloads ~345 MB + 1.6 MB the first time
#   MIRROR=/path/to/generating-reviews-discovering-sentiment RUNS=/tmp/paper recipes/paper_sst2.sh
#   DATA=../shared/data RUNS=/tmp/paper recipes/paper_sst2.sh      # SST-2 already there: no download
#
# Time on a 2-core CPU without native bf16 (README "Reproduce the paper"): about 26 minutes idle,
# nearly all of it featurizing SST-2's 9,613 sentences (1.0 M bytes); CUDA=1 runs it on a GPU.
set -euo pipefail
RUNS=${RUNS:-./experiments}
SD=${SD:-sentiment-discovery}
MODEL=${MODEL:-openai-mlstm}
MIRROR=${MIRROR:-}
CUDA=${CUDA:+-cuda}
mirror=()
[ -n "$MIRROR" ] && mirror=(--mirror "$MIRROR")

# 1. The model, into the model cache (verified by git blob ids; a cut-off download resumes).
[ "$MODEL" = openai-mlstm ] && $SD download openai-mlstm "${mirror[@]}"

# 2. SST-2 as the release distributes it (verified by sha256), unless DATA already holds it.
if [ -z "${DATA:-}" ]; then
  DATA="$RUNS/data"
  $SD download sst2 --to "$DATA" "${mirror[@]}"
fi

# 3. Transfer: final cell state (the paper's feature), L1 sweep over the release's C grid.
#    Prints the 2017 result lines; results.json, the classifier, the weights figure and each
#    top unit's histogram go to $RUNS/paper/sst2/$MODEL/.
$SD transfer -experiment_dir "$RUNS" -experiment_name paper -load_model "$MODEL" $CUDA \
  -train "$DATA/sst2/train.csv" -valid "$DATA/sst2/dev.csv" -test "$DATA/sst2/test.csv" \
  -text_key sentence -label_key label -pooling final -num_neurons 1 -no_data_efficiency -batch_size 128 \
  | tee "$RUNS/paper_sst2_lines.txt"

cat <<'EOF'
-- the paper (Radford et al. 2017, table 2 and section 4): --
SST-2 test accuracy with all units, L1 logistic regression: 91.8 %
SST-2 test accuracy from the sentiment unit (2388) alone: 92.30 % (figure 3 shows its histogram)
EOF

# 4. The sentiment unit over a review (its recorded unit, 2388): a PNG and an HTML heatmap.
$SD visualize -experiment_dir "$RUNS" -experiment_name paper -load_model "$MODEL" $CUDA \
  -text "25 August 2003 League of Extraordinary Gentlemen: Sean Connery is one of the all time greats and I have been a fan of his since the 1950's. I went to this movie because Sean Connery was the main actor. I had not read reviews or had any prior knowledge of the movie. The movie surprised me quite a bit. The scenery and sights were spectacular, but the plot was unreal to the point of being ridiculous. In my mind this was not one of his better movies it could be the worst. Why he chose to be in this movie is a mystery. For me, going to this movie was a waste of my time. I will continue to go to his movies and add his movies to my video collection. But I can't see wasting money to put this movie in my collection"

echo "results: $RUNS/paper/sst2/$MODEL/ (results.json, neuron_*_histogram.png); heatmaps: $RUNS/paper/heatmaps/"
echo "live: sentiment-discovery serve --model $MODEL"
