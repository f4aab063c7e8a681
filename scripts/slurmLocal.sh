#!/usr/bin/env bash
# A real single-node Slurm cluster on localhost for tests and trying ptb's Slurm executor:
# munged, MariaDB (accounting only), slurmdbd, slurmctld and slurmd, all with their files under one
# directory, and a fake `gpu` gres with 2 GPUs (device files are links to /dev/null and /dev/zero).
#
#   scripts/slurmLocal.sh install   apt-get the packages (slurm-wlm slurmdbd mariadb-server munge)
#   scripts/slurmLocal.sh start     start everything; prints `export SLURM_CONF=...` for the clients
#   scripts/slurmLocal.sh stop      stop everything started by `start`, keep nothing running
#   scripts/slurmLocal.sh env       print the SLURM_CONF line again
#
# PTB_SLURM_DIR (default /tmp/ptb-slurm) holds configuration, state, logs, the database and sockets.
# Needs root (the daemons run as root here; jobs run as the submitting user). No file outside
# PTB_SLURM_DIR is written except the per-job cgroups Slurm makes (removed by `stop`).
set -euo pipefail

DIR="${PTB_SLURM_DIR:-/tmp/ptb-slurm}"
HOST="$(hostname -s)"
CLUSTER=ptbtest
DB_PORT="${PTB_SLURM_DB_PORT:-3407}"
CTLD_PORT="${PTB_SLURM_CTLD_PORT:-6917}"
SLURMD_PORT="${PTB_SLURM_SLURMD_PORT:-6918}"
DBD_PORT="${PTB_SLURM_DBD_PORT:-6919}"
# The node offers more CPUs than this machine has (config_overrides), so a test array of small tasks
# can run two at a time on a 2-core machine.
NODE_CPUS="${PTB_SLURM_CPUS:-4}"
NODE_MEM_MB="${PTB_SLURM_MEM_MB:-8192}"
MUNGE_SOCKET="$DIR/munge/munge.socket"

log() { echo "slurmLocal: $*" >&2; }

install_packages() {
  local need=()
  command -v slurmctld >/dev/null || need+=(slurm-wlm)
  command -v slurmdbd >/dev/null || need+=(slurmdbd)
  command -v mariadbd >/dev/null || need+=(mariadb-server)
  command -v munged >/dev/null || need+=(munge)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

write_config() {
  mkdir -p "$DIR"/{etc,state,spool,log,munge,db,run,gpus}
  chmod 700 "$DIR/munge"
  ln -sfn /dev/null "$DIR/gpus/gpu0"
  ln -sfn /dev/zero "$DIR/gpus/gpu1"
  cat >"$DIR/etc/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# cgroup process tracking: setsid'd children of a job are still found and killed by scancel
ProctrackType=proctrack/cgroup
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
GresTypes=gpu
SlurmdParameters=config_overrides
JobRequeue=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# A killed slurmd is a failed node within seconds (tests), not minutes.
SlurmdTimeout=10
SlurmctldTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=600
NodeName=$HOST CPUs=$NODE_CPUS RealMemory=$NODE_MEM_MB Gres=gpu:fake:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/etc/gres.conf" <<EOF
NodeName=$HOST Name=gpu Type=fake File=$DIR/gpus/gpu[0-1]
EOF
  cat >"$DIR/etc/cgroup.conf" <<EOF
CgroupPlugin=cgroup/v1
CgroupAutomount=yes
EOF
  cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
EOF
  chmod 600 "$DIR/etc/slurmdbd.conf"
}

wait_for() { # what, seconds, command...
  local what=$1 secs=$2
  shift 2
  for _ in $(seq $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "timed out waiting for $what"
  return 1
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  pid_alive "$DIR/run/munged.pid" && return 0
  [ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key" --force
  chmod 600 "$DIR/munge/munge.key"
  munged --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" --pid-file="$DIR/run/munged.pid" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" --force
  wait_for munged 10 test -S "$MUNGE_SOCKET"
}

start_mariadb() {
  pid_alive "$DIR/run/mariadb.pid" && return 0
  local fresh=0
  if [ ! -d "$DIR/db/mysql" ]; then
    mariadb-install-db --user=root --datadir="$DIR/db" --auth-root-authentication-method=socket \
      --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1
    fresh=1
  fi
  mariadbd --no-defaults --user=root --datadir="$DIR/db" --socket="$DIR/run/mariadb.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$DIR/run/mariadb.pid" \
    --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=32M --skip-name-resolve \
    >/dev/null 2>&1 &
  wait_for mariadb 60 mariadb --no-defaults --socket="$DIR/run/mariadb.sock" -uroot -e 'SELECT 1'
  if [ "$fresh" = 1 ]; then
    mariadb --no-defaults --socket="$DIR/run/mariadb.sock" -uroot -e \
      "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm'; CREATE USER 'slurm'@'localhost' IDENTIFIED BY 'slurm';
       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  fi
}

start_slurm() {
  export SLURM_CONF="$DIR/etc/slurm.conf"
  pid_alive "$DIR/run/slurmdbd.pid" || slurmdbd
  wait_for slurmdbd 60 sacctmgr -n list cluster
  if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
  pid_alive "$DIR/run/slurmctld.pid" || slurmctld
  wait_for slurmctld 30 scontrol ping
  pid_alive "$DIR/run/slurmd.pid" || slurmd
  wait_for "the node to be idle" 60 bash -c "sinfo -h -o %T | grep -qx idle"
  # A node left down by an earlier test (slurmd killed) comes back.
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
}

stop_pid() { # pidfile
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop_all() {
  export SLURM_CONF="$DIR/etc/slurm.conf"
  if [ -f "$SLURM_CONF" ] && pid_alive "$DIR/run/slurmctld.pid"; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  fi
  stop_pid "$DIR/run/slurmd.pid"
  stop_pid "$DIR/run/slurmctld.pid"
  stop_pid "$DIR/run/slurmdbd.pid"
  stop_pid "$DIR/run/mariadb.pid"
  stop_pid "$DIR/run/munged.pid"
  # Job cgroups Slurm made (tasks are gone once slurmd has killed them).
  for d in /sys/fs/cgroup/*/slurm_"$HOST" /sys/fs/cgroup/*/slurm; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

case "${1:-}" in
  install) install_packages ;;
  start)
    install_packages
    write_config
    start_munge
    start_mariadb
    start_slurm
    echo "export SLURM_CONF=$DIR/etc/slurm.conf"
    ;;
  stop) stop_all ;;
  env) echo "export SLURM_CONF=$DIR/etc/slurm.conf" ;;
  *)
    echo "usage: $0 install|start|stop|env" >&2
    exit 2
    ;;
esac
