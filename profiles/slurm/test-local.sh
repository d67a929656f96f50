#!/usr/bin/env bash
# The SLURM profile, for real: bring up a single-node SLURM on this machine
# (local-cluster.sh), run the smoke profile through it to the end in one fresh clone and on
# this machine directly in another, then check that both made the same run records
# (bit for bit: same machine, same threads) and the same tables and figures (byte for byte).
#   profiles/slurm/test-local.sh [WORKDIR]     (root; apt install slurm-wlm munge)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/pcdeq-slurm-test}
py=${PYTHON:-python3}
rm -rf "$work" && mkdir -p "$work"
git clone -q "$repo" "$work/slurm" && git clone -q "$repo" "$work/local"
eval "$("$repo/profiles/slurm/local-cluster.sh" up | tail -n 1)"
echo "=== smoke profile through SLURM ($SLURM_CONF)"
# No accounting database on the local cluster: job states from squeue, no account to guess.
(cd "$work/slurm" && "$py" -m snakemake all --profile profiles/slurm --configfile config/smoke.yaml \
   --slurm-status-command squeue --slurm-no-account --slurm-init-seconds-before-status-checks 5)
echo "=== smoke profile on this machine"
(cd "$work/local" && "$py" -m snakemake --cores 1 all --configfile config/smoke.yaml)
echo "=== same records, same artifacts"
"$py" -m pcdeq compare "$work/local/runs/smoke" "$work/slurm/runs/smoke" --exact
n=0
for f in $(cd "$work/local" && ls tables/smoke/*.md tables/smoke/*.tex figures/smoke/*.pdf figures/smoke/*.png); do
  case "$f" in
    */table8_stable_deqs.*)  # its "s / epoch" column is a measured time: equal but for it
      "$py" - "$work/local/$f" "$work/slurm/$f" <<'PY'
import sys
a, b = (open(p).read().splitlines() for p in sys.argv[1:])
sep = "|" if sys.argv[1].endswith(".md") else "&"
col = next(i for i, h in enumerate(next(l for l in a if "epoch" in l and sep in l).split(sep))
           if "s / epoch" in h)
strip = lambda ls: [sep.join(c for i, c in enumerate(l.split(sep)) if i != col) for l in ls]
sys.exit(strip(a) != strip(b))
PY
      ;;
    *) cmp "$work/local/$f" "$work/slurm/$f" ;;
  esac
  n=$((n + 1))
done
jobs=$(squeue --states=all --noheader --format=%T | grep -c COMPLETED || true)
echo "OK: $n artifacts identical (Table 8 but for its timing column); SLURM ran $jobs jobs to COMPLETED"
