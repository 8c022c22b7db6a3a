#!/usr/bin/env bash
# The study runs of the open issues, as queues of one-core jobs (run one queue per core,
# side by side). Every run skips results that exist and resumes interrupted work, so a
# queue can be stopped and started again in a later checkout; a finished queue (scratch,
# standard) finds every result and does nothing, and reruns them from an empty results/.
#   scripts/open_studies.sh maskedsst [SEED...]  # issue 9: MaskedSST pretraining choice
#   scripts/open_studies.sh maskedsst-scratch  # issue 9: the scratch test rows, equal weights
#   scripts/open_studies.sh maskedsst-standard # issue 9: standardised input against min-max
#   scripts/open_studies.sh maskedsst-enmap    # issue 9: wavelength positions on EnMAP
#   scripts/open_studies.sh maskedsst-visible  # issue 9: test rows, visible-pixel pretraining
#   scripts/open_studies.sh maskedsst-enmap-visible # issue 9: the same on EnMAP, sin-cos
# SEED...: only these seeds (default 0 1 2), so that two cores can share one queue's seeds.
# Logs: runs/logs/<queue>[-seeds-<SEED...>].log. After each result:
# scripts/refresh_results.py, commit.
set -euo pipefail
cd "$(dirname "$0")/.."
queue=${1:-}
queues=(maskedsst maskedsst-scratch maskedsst-standard maskedsst-enmap maskedsst-visible
    maskedsst-enmap-visible)
known=
for name in "${queues[@]}"; do
    if [[ "$queue" == "$name" ]]; then known=1; fi
done
if [[ -z "$known" ]]; then
    echo "usage: scripts/open_studies.sh $(IFS=\|; echo "${queues[*]}") [SEED...]" >&2
    exit 2
fi
seeds=("${@:2}")
for seed in "${seeds[@]}"; do
    if [[ ! "$seed" =~ ^[0-9]+$ ]]; then
        echo "error: a seed is a whole number, not '$seed'" >&2
        exit 2
    fi
done
log="runs/logs/$queue.log"
if ((${#seeds[@]})); then
    log="runs/logs/$queue-seeds-$(
        IFS=-
        echo "${seeds[*]}"
    ).log"
else
    seeds=(0 1 2)
fi
mkdir -p runs/logs
scratch=(.venv/bin/python scripts/maskedsst_study.py --threads 1 --quiet --configs scratch)
masked=(.venv/bin/python scripts/maskedsst_study.py --threads 1 --scenes indian_pines)
masked+=(--validation 0.3)
chosen_pretraining=(--encoder visible --pretrain-steps 4800) # the maskedsst queue's choice
visible=(.venv/bin/python scripts/maskedsst_study.py --threads 1 --quiet --configs pretrained)
visible+=("${chosen_pretraining[@]}")
case "$queue" in
maskedsst)
    # the pretraining decision rule of docs/RESULTS.md, with equal pixel weights (scratch
    # rows of seeds 0-2 exist): the default pretraining, then the visible-pixel encoder
    for seed in "${seeds[@]}"; do
        "${masked[@]}" --seed "$seed" --pretraining-seed "$seed" --configs pretrained
    done
    for seed in "${seeds[@]}"; do
        "${masked[@]}" --seed "$seed" --pretraining-seed "$seed" --configs pretrained \
            "${chosen_pretraining[@]}"
    done
    ;;
maskedsst-scratch)
    # the test rows from scratch with the default equal pixel weights (they do not wait for
    # the pretraining choice): full split, the stored 5/10/20 subsets, the EnMAP tiles
    for seed in "${seeds[@]}"; do
        "${scratch[@]}" --scenes indian_pines --seed "$seed"
        for n in 5 10 20; do
            "${scratch[@]}" --scenes indian_pines --seed "$seed" --subset "$n"
        done
        "${scratch[@]}" --scenes enmap --seed "$seed"
    done
    ;;
maskedsst-standard)
    # the input normalisation rule of docs/RESULTS.md: from scratch, Indian Pines'
    # validation pixels and the EnMAP validation tiles against min-max, seeds 0-2
    for seed in "${seeds[@]}"; do
        "${masked[@]}" --quiet --seed "$seed" --configs scratch --normalization standard
        "${scratch[@]}" --scenes enmap --seed "$seed" --normalization standard
        "${scratch[@]}" --scenes enmap --seed "$seed"
    done
    ;;
maskedsst-enmap)
    # the position-embedding rule of docs/RESULTS.md: from scratch on the EnMAP tiles,
    # spectral sin-cos positions from the band wavelengths against the learned table
    for seed in "${seeds[@]}"; do
        "${scratch[@]}" --scenes enmap --seed "$seed" --pos-embedding sincos
    done
    ;;
maskedsst-visible)
    # the pre-trained test rows with the visible-pixel encoder (4,800 steps; the choice
    # itself is the maskedsst queue's, on validation pixels): the stored 5/10/20 subsets
    # from backbone 0 like the FactoFormer study, the full split from backbone SEED
    for seed in "${seeds[@]}"; do
        "${visible[@]}" --scenes indian_pines --seed "$seed" --pretraining-seed 0 --subset 5
        "${visible[@]}" --scenes indian_pines --seed "$seed"
        for n in 10 20; do
            "${visible[@]}" --scenes indian_pines --seed "$seed" --pretraining-seed 0 --subset "$n"
        done
    done
    ;;
maskedsst-enmap-visible)
    # the same pretraining on all 18 EnMAP tiles (backbone 0, sin-cos positions as chosen
    # on the validation tiles), fine-tuned on the train tiles with each seed
    for seed in "${seeds[@]}"; do
        "${visible[@]}" --scenes enmap --seed "$seed" --pretraining-seed 0 --pos-embedding sincos
    done
    ;;
esac >>"$log" 2>&1
