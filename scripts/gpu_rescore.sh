#!/usr/bin/env bash
# Rescore every shipped model on a GPU machine (issue 13: the accurate integrator), several
# models at once, and pack what changed into one archive, whatever happens:
#     bash scripts/gpu_rescore.sh OUT_DIR SECONDS [GROUP ...]
# The data sets are generated first (models of one system share them); then each group runs
# `scripts/pretrained.py rescore` in its own process, stopped after SECONDS; OUT_DIR/rescored.tgz
# holds every eval.json and config.json and the logs.
set -uo pipefail
out=${1:?output folder}
limit=${2:-400}
shift 2
# a group: comma-separated models run one after another in one process; the groups run at
# once (about 10 at once ran out of memory on an H100: the flow and spiral models take
# 6-16 GB each)
groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(burgers_paper,burgers_paper_d3,burgers_paper_d5
        cylinder_paper_d7 cylinder_paper_d8 cylinder_paper_d9
        reaction_diffusion_paper reaction_diffusion_paper_noisy
        burgers,heat,oscillator,van_der_pol
        reaction_diffusion,pendulum_video
        kuramoto_sivashinsky
        lotka_volterra,lotka_volterra_paper
        lorenz63,predprey4)
logs=/tmp/rescore-logs
mkdir -p "$out" "$logs" /tmp/srom-data
pack() { tar czf "$out/rescored.tgz" pretrained/*/eval.json pretrained/*/config.json -C /tmp rescore-logs; }
trap pack EXIT
timeout "$limit" python scripts/pretrained.py data --only cylinder_paper_d7 --data-dir /tmp/srom-data \
  > "$logs/data.log" 2>&1
pids=()
for group in "${groups[@]}"; do
  timeout "$limit" python scripts/pretrained.py rescore --only "$group" --data-dir /tmp/srom-data \
    > "$logs/${group%%,*}.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
grep -h "rel. L2" "$logs"/*.log
exit $status
