#!/usr/bin/env bash
# A single-node SLURM on this machine, from Debian's packages (apt install slurm-wlm munge),
# to test profiles/slurm for real: `up` writes a slurm.conf for this host (all its cores and
# memory, no accounting database) under $SLURM_DIR and starts munged, slurmctld and slurmd;
# `down` stops them. Needs root (the daemons); prints the SLURM_CONF to export.
#   profiles/slurm/local-cluster.sh up && export SLURM_CONF=/tmp/pcdeq-slurm/slurm.conf
set -euo pipefail
D=${SLURM_DIR:-/tmp/pcdeq-slurm}
cmd=${1:-up}
if [ "$cmd" = down ]; then
  for pid in "$D/slurmd.pid" "$D/slurmctld.pid"; do [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true; done
  [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$D/slurm.conf" ] && rm -f /etc/slurm/slurm.conf
  exit 0
fi
for exe in munged slurmctld slurmd sbatch; do
  command -v "$exe" >/dev/null || { echo "error: $exe not found: apt install slurm-wlm munge" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "error: starting the SLURM daemons needs root" >&2; exit 2; }
host=$(hostname)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
mkdir -p "$D/state" "$D/spool" /run/munge
cat > "$D/slurm.conf" <<CONF
ClusterName=pcdeq-local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmdSpoolDir=$D/spool
StateSaveLocation=$D/state
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ReturnToService=2
# no accounting database here: job states are read with squeue, which needs them kept a while
MinJobAge=86400
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
if ! munge -n >/dev/null 2>&1; then
  [ -s /etc/munge/munge.key ] || mungekey --create 2>/dev/null || create-munge-key
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  su -s /bin/sh munge -c munged || munged --force
fi
# Jobs run `srun` inside their allocation, which reads the default config path, not
# $SLURM_CONF: put ours there (a slurm.conf of a real installation is left alone).
if [ ! -e /etc/slurm/slurm.conf ] || grep -q "^ClusterName=pcdeq-local" /etc/slurm/slurm.conf; then
  mkdir -p /etc/slurm && ln -sf "$D/slurm.conf" /etc/slurm/slurm.conf
fi
export SLURM_CONF="$D/slurm.conf"
pgrep -x slurmctld >/dev/null || slurmctld -f "$SLURM_CONF"
pgrep -x slurmd >/dev/null || slurmd -f "$SLURM_CONF"
for _ in $(seq 30); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo
echo "export SLURM_CONF=$SLURM_CONF"
