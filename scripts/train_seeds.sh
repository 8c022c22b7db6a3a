#!/usr/bin/env bash
# Train FactoFormer on the Indian Pines fixed split with the paper recipe, seeds 0-4, then
# print the results table (docs/RESULTS.md). About 6-7 min per seed on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
for seed in ${SEEDS:-0 1 2 3 4}; do
    .venv/bin/python -m engine train --dataset indian_pines --seed "$seed" \
        --output-dir "runs/indian_pines-seed$seed" --quiet
done
.venv/bin/python scripts/results_table.py runs/indian_pines-seed*
