#!/usr/bin/env bash
# Long training runs in the background, one job after another: each job is Snakemake's own
# `train` rule (workflow/rules/train.smk) for one record, so its sizes, epochs and solver cap
# come from the profile (config/PROFILE.yaml), never from the job list. The rule trains into
# RUN.json.part with a checkpoint RUN.json.part.ckpt after every finished epoch, and moves
# RUN.json / RUN.pt into place once the run has ended; an interrupted job resumes from its last
# finished epoch when the queue (or Snakemake) runs it again. Snakemake runs with --nolock, so
# that two queues (and a `runs_from=committed` render) can share the checkout: each queue job
# writes only its own record, and the one step they share, the `dataset` rule, runs under a lock.
#
#   workflow/scripts/background_queue.sh PROFILE THREADS JOBFILE
#
# JOBFILE: one job per line, "DATASET METHOD SEED", e.g.
#   fashion_mnist pcDEQ-1-SC-Tanh 1
# (# starts a comment). THREADS: torch threads per job (the profile's `threads` is overridden).
# Every line is checked (a dry run of all of them) before the first job starts.
# Stop it cleanly with `kill -TERM <pid of this script>`: the job in progress loses only its
# current epoch.
set -uo pipefail
if [ $# -ne 3 ]; then echo "usage: $0 PROFILE THREADS JOBFILE" >&2; exit 2; fi
profile=$1 threads=$2
jobfile=$(realpath -e -- "$3" 2>/dev/null) || { echo "no job list $3" >&2; exit 2; }
cd "$(dirname "$0")/../.."
PY=${PY:-python}  # the interpreter with snakemake and the pcdeq dependencies (the venv)
if [ ! -e "config/$profile.yaml" ]; then
  echo "no profile config/$profile.yaml: name one of $(ls config | grep -v schema | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
  exit 2
fi
smk=("$PY" -m snakemake --cores 1 --nolock --configfile "config/$profile.yaml" --config "threads=$threads")
# A job list that spells sizes by hand would train another protocol than the profile's.
bad=$(grep -nvE '^[[:space:]]*(#.*)?$|^[[:space:]]*[A-Za-z0-9_-]+[[:space:]]+[^[:space:]]+[[:space:]]+[0-9]+[[:space:]]*$' "$jobfile")
bad+=$(grep -n $'\r' "$jobfile")
if [ -n "$bad" ]; then
  printf '%s: lines must read "DATASET METHOD SEED" with Unix line ends (sizes and --max-iter come from config/%s.yaml):\n%s\n' \
    "$jobfile" "$profile" "$bad" >&2
  exit 2
fi
recs=()  # the records to make, runs/PROFILE/DATASET/METHOD/seedS.json ("*" spelled "-aug")
while read -r dataset method seed || [ -n "${dataset:-}" ]; do
  [ -z "${dataset:-}" ] || [ "${dataset:0:1}" = "#" ] && continue
  recs+=("runs/$profile/$dataset/${method//\*/-aug}/seed$seed.json")
done < "$jobfile"
# a method, dataset or seed the profile cannot train fails here, not hours later in its turn
if [ ${#recs[@]} -gt 0 ] && ! out=$("${smk[@]}" --dry-run --quiet all -- "${recs[@]}" 2>&1); then
  printf '%s: Snakemake cannot make these records with config/%s.yaml:\n%s\n' "$jobfile" "$profile" \
    "$(sed -n "/^Building DAG/,\$p" <<< "$out" | tail -n +2)" >&2
  exit 2
fi
child=
# On TERM Snakemake itself only stops scheduling and waits for the running job to end, so the
# queue sends TERM to the job's whole process group (Snakemake, the rule's shell, the training).
trap '[ -n "$child" ] && kill -TERM -- "-$child" 2>/dev/null; [ -n "$child" ] && wait "$child"; exit 143' TERM INT
for rec in "${recs[@]}"; do
  job=${rec#"runs/$profile/"}  # DATASET/METHOD/seedS.json
  log=logs/$profile/train/${job%.json}.log
  # finished here, or finished on an earlier machine and committed under results/
  if [ -e "$rec" ]; then echo "done already: $rec"; continue; fi
  if [ -e "results/$profile/$job" ]; then echo "committed already: results/$profile/$job"; continue; fi
  # the dataset rule's output is shared by every job: one queue at a time makes it
  mkdir -p logs
  flock "logs/.queue-$profile.lock" "${smk[@]}" --quiet all --until dataset -- "$rec" \
    || { echo "$(date -Is) FAILED: the data set of $job"; continue; }
  # the rule writes its log afresh: keep an interrupted attempt's log beside it
  [ -e "$log" ] && mv "$log" "$log.$(date +%Y%m%dT%H%M%S)"
  echo "$(date -Is) start $job"
  setsid "${smk[@]}" -- "$rec" &
  child=$!
  wait "$child"; rc=$?
  child=
  if [ $rc -ne 0 ]; then echo "$(date -Is) FAILED ($rc): $job, see $log"; continue; fi
  echo "$(date -Is) finished $rec"
done
