#!/usr/bin/env bash
# Long training runs in the background, one job after another, outside Snakemake: exactly
# the `train` rule's command (workflow/rules/train.smk), writing RUN.json.part, its checkpoint
# RUN.json.part.ckpt after every epoch, and RUN.json / RUN.pt once the run ends, under
# runs/<profile>/. An interrupted job resumes from its last finished epoch when the queue (or
# Snakemake) runs it again, and Snakemake later takes the finished files as its own outputs.
#
#   workflow/scripts/background_queue.sh PROFILE THREADS JOBFILE
#
# JOBFILE: one job per line, "DATASET METHOD SEED [size flags]", e.g.
#   fashion_mnist pcDEQ-1-MC-ReLU6 0
#   fashion_mnist pcDEQ-1-SC-Tanh 1 --train-limit 6000
# Stop it cleanly with `kill -TERM <pid of this script>`: the job in progress loses only its
# current epoch.
set -uo pipefail
profile=$1 threads=$2 jobfile=$3
cd "$(dirname "$0")/../.."
PY=${PY:-python}
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT
while read -r dataset method seed flags; do
  [ -z "${dataset:-}" ] || [ "${dataset:0:1}" = "#" ] && continue
  safe=${method//\*/-aug}
  dir=runs/$profile/$dataset/$safe
  rec=$dir/seed$seed.json
  log=logs/$profile/train/$dataset/$safe/seed$seed.log
  # finished here, or finished on an earlier machine and committed under results/
  if [ -e "$rec" ]; then echo "done already: $rec"; continue; fi
  if [ -e "results/$profile/$dataset/$safe/seed$seed.json" ]; then
    echo "committed already: results/$profile/$dataset/$safe/seed$seed.json"; continue
  fi
  mkdir -p "$dir" "$(dirname "$log")"
  echo "$(date -Is) start $dataset $method seed $seed $flags"
  # shellcheck disable=SC2086
  $PY -m pcdeq train --dataset "$dataset" --method "$method" --seed "$seed" \
      --out "$rec.part" --weights "$dir/seed$seed.pt.part" $flags \
      --device cpu --data-root data --threads "$threads" >> "$log" 2>&1 &
  child=$!
  wait "$child"; rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then echo "$(date -Is) FAILED ($rc): $method seed $seed, see $log"; continue; fi
  mv "$dir/seed$seed.pt.part" "$dir/seed$seed.pt" && mv "$rec.part" "$rec"
  echo "$(date -Is) finished $rec"
done < "$jobfile"
