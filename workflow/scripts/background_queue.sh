#!/usr/bin/env bash
# Long training runs in the background, one job after another: each job is Snakemake's own
# `train` rule (workflow/rules/train.smk) for one record, so its sizes, epochs and solver cap
# come from the profile (config/PROFILE.yaml), never from the job list. The rule trains into
# RUN.json.part with a checkpoint RUN.json.part.ckpt after every finished epoch, and moves
# RUN.json / RUN.pt into place once the run has ended; an interrupted job resumes from its last
# finished epoch when the queue (or Snakemake) runs it again. Snakemake runs with --nolock, so
# that two queues (and a `runs_from=committed` render) can share the checkout: each queue job
# writes only its own record.
#
#   workflow/scripts/background_queue.sh PROFILE THREADS JOBFILE
#
# JOBFILE: one job per line, "DATASET METHOD SEED", e.g.
#   fashion_mnist pcDEQ-1-SC-Tanh 1
# (# starts a comment). THREADS: torch threads per job (the profile's `threads` is overridden).
# Stop it cleanly with `kill -TERM <pid of this script>`: the job in progress loses only its
# current epoch.
set -uo pipefail
if [ $# -ne 3 ]; then echo "usage: $0 PROFILE THREADS JOBFILE" >&2; exit 2; fi
profile=$1 threads=$2 jobfile=$3
cd "$(dirname "$0")/../.."
if [ ! -e "config/$profile.yaml" ]; then
  echo "no profile config/$profile.yaml: name one of $(ls config | grep -v schema | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
  exit 2
fi
# Every line is checked before the first job starts: a job list that names sizes by hand
# would train another protocol than the profile's (the twin this script no longer has).
bad=$(grep -nvE '^[[:space:]]*(#.*)?$|^[[:space:]]*[A-Za-z0-9_-]+[[:space:]]+[^[:space:]]+[[:space:]]+[0-9]+[[:space:]]*$' "$jobfile")
if [ -n "$bad" ]; then
  printf '%s: lines must read "DATASET METHOD SEED" (sizes and --max-iter come from config/%s.yaml):\n%s\n' \
    "$jobfile" "$profile" "$bad" >&2
  exit 2
fi
PY=${PY:-python}  # the interpreter with snakemake and the pcdeq dependencies (the venv)
# On TERM Snakemake itself only stops scheduling and waits for the running job to end, so the
# queue sends TERM to the job's whole process group (Snakemake, the rule's shell, the training).
trap 'kill -TERM -- "-$child" 2>/dev/null; wait "$child"; exit 143' TERM INT
while read -r dataset method seed; do
  [ -z "${dataset:-}" ] || [ "${dataset:0:1}" = "#" ] && continue
  safe=${method//\*/-aug}
  rec=runs/$profile/$dataset/$safe/seed$seed.json
  # finished here, or finished on an earlier machine and committed under results/
  if [ -e "$rec" ]; then echo "done already: $rec"; continue; fi
  if [ -e "results/$profile/$dataset/$safe/seed$seed.json" ]; then
    echo "committed already: results/$profile/$dataset/$safe/seed$seed.json"; continue
  fi
  echo "$(date -Is) start $dataset $method seed $seed"
  setsid "$PY" -m snakemake --cores 1 --nolock --configfile "config/$profile.yaml" \
      --config threads="$threads" -- "$rec" &
  child=$!
  wait "$child"; rc=$?
  if [ $rc -ne 0 ]; then
    echo "$(date -Is) FAILED ($rc): $method seed $seed, see logs/$profile/train/$dataset/$safe/seed$seed.log"
    continue
  fi
  echo "$(date -Is) finished $rec"
done < "$jobfile"
