#!/usr/bin/env bash
# Carry long runs across machines through git: `save` copies what runs/<profile>/ holds of
# unfinished runs (RUN.json.part, its checkpoint RUN.json.part.ckpt, written after every
# finished epoch) into results/<profile>/in_progress/, and the finished records with their
# weights into results/<profile>/ (the committed reference); `restore` copies the unfinished
# runs back, so that the background queue or Snakemake resumes them from the last finished
# epoch.
#
#   workflow/scripts/stash_runs.sh save PROFILE      # then commit results/PROFILE
#   workflow/scripts/stash_runs.sh restore PROFILE   # in a new checkout, before resuming
#
# A run that finished too late in a session to re-render the artifacts with it can be parked
# as in_progress/<dataset>/<method>/seedS.json (and .pt): `restore` puts it back into runs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=$1 profile=$2
runs=runs/$profile stash=results/$profile/in_progress
cfg=config/$profile.yaml
mapfile -t weights < <(python3 -c "import sys, yaml; print('\n'.join(yaml.safe_load(open(sys.argv[1])).get('reference_weights', [])))" "$cfg" 2>/dev/null)
case $mode in
  save)
    [ -d "$runs" ] || { echo "no $runs/: nothing to save" >&2; exit 1; }
    rm -rf "$stash"
    find "$runs" -name 'seed*.json.part' | while read -r part; do
      ckpt=$part.ckpt
      [ -e "$ckpt" ] || continue  # no finished epoch yet: nothing worth carrying
      rel=${part#"$runs"/}
      mkdir -p "$stash/$(dirname "$rel")"
      cp -p "$part" "$ckpt" "$stash/$(dirname "$rel")/"
      echo "in progress: $rel ($(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['epochs']))" "$part") epochs)"
    done
    find "$runs" -name 'seed*.json' | while read -r rec; do
      rel=${rec#"$runs"/}
      mkdir -p "results/$profile/$(dirname "$rel")"
      cp -p "$rec" "results/$profile/$rel"
      # weights only of the profile's reference_weights models, seed 0 (as the `reference` target)
      method=$(basename "$(dirname "$rec")")
      if [ "$(basename "$rec")" = seed0.json ] && [ -e "${rec%.json}.pt" ] \
          && printf '%s\n' "${weights[@]}" | grep -qxF -- "${method//-aug/*}"; then
        cp -p "${rec%.json}.pt" "results/$profile/${rel%.json}.pt"
      fi
      echo "finished: $rel"
    done
    ;;
  restore)
    [ -d "$stash" ] || { echo "no $stash/: nothing to restore" >&2; exit 0; }
    find "$stash" -name 'seed*.json.part' | while read -r part; do
      rel=${part#"$stash"/}
      if [ -e "$runs/${rel%.part}" ]; then echo "finished already: ${rel%.part}"; continue; fi
      mkdir -p "$runs/$(dirname "$rel")"
      cp -p "$part" "$part.ckpt" "$runs/$(dirname "$rel")/"
      echo "restored: $rel"
    done
    # finished at a session's end but not yet committed under results/ (that needs the
    # artifacts re-rendered with it): back into runs/, so that no queue trains it again and
    # the next `save` moves it to results/
    find "$stash" -name 'seed*.json' | while read -r rec; do
      rel=${rec#"$stash"/}
      [ -e "$runs/$rel" ] && continue
      mkdir -p "$runs/$(dirname "$rel")"
      cp -p "$rec" "$runs/$rel"
      [ -e "${rec%.json}.pt" ] && cp -p "${rec%.json}.pt" "$runs/${rel%.json}.pt"
      echo "restored finished: $rel (save, re-render, then commit it under results/)"
    done
    ;;
  *) echo "usage: $0 save|restore PROFILE" >&2; exit 2 ;;
esac
