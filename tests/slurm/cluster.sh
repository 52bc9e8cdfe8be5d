#!/usr/bin/env bash
# A real single-node SLURM cluster for the tests: Debian's slurmctld + slurmd + munge, two GPUs
# declared through gres (character devices standing in for /dev/nvidia*), no accounting daemon.
# The scheduler's own record of every job goes to a job-completion log (jobcomp/filetxt).
#   tests/slurm/cluster.sh install   apt-get the packages if missing (root)
#   tests/slurm/cluster.sh start     install if needed, write the config, start the daemons, wait for the node
#   tests/slurm/cluster.sh stop      stop the daemons this script started (by PID), remove its config links
# State lives in $SLURM_TEST_DIR (default /tmp/crystal-campaign-slurm).
set -euo pipefail
DIR=${SLURM_TEST_DIR:-/tmp/crystal-campaign-slurm}
PACKAGES=(slurmctld slurmd slurm-client munge)

install() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "install ok installed" || missing+=("${package}")
    done
    [ ${#missing[@]} -eq 0 ] && return
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_config() {
    local cpus memory
    cpus=$(getconf _NPROCESSORS_ONLN)  # not nproc: it honours OMP_NUM_THREADS
    memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 3 / 4))
    mkdir -p "${DIR}"/{spool/ctld,spool/d,log,gpus}
    for gpu in 0 1; do
        [ -e "${DIR}/gpus/gpu${gpu}" ] || mknod "${DIR}/gpus/gpu${gpu}" c 1 3
    done
    cat >"${DIR}/slurm.conf" <<CONF
ClusterName=crystal
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=${DIR}/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=3600
ReturnToService=2
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
StateSaveLocation=${DIR}/spool/ctld
SlurmdSpoolDir=${DIR}/spool/d
SlurmctldPidFile=${DIR}/slurmctld.pid
SlurmdPidFile=${DIR}/slurmd.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory} Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    cat >"${DIR}/gres.conf" <<CONF
AutoDetect=off
NodeName=localhost Name=gpu File=${DIR}/gpus/gpu[0-1]
CONF
}

start() {
    install
    stop 2>/dev/null || true
    rm -rf "${DIR}/spool" "${DIR}/log"
    write_config
    mkdir -p /run/munge /etc/munge
    chown munge: /run/munge
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; chown munge: /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
    if ! pgrep -u munge -x munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/test-munged.pid
        cp /run/munge/test-munged.pid "${DIR}/munged.pid"
    fi
    # srun inside a job finds only the default path, so the test config is linked there (never over
    # a site's own config).
    mkdir -p /etc/slurm
    for conf in slurm.conf gres.conf; do
        if [ -e "/etc/slurm/${conf}" ] && [ ! -L "/etc/slurm/${conf}" ]; then
            echo "/etc/slurm/${conf} exists and is not ours; not starting a test cluster over it" >&2
            exit 1
        fi
        ln -sfn "${DIR}/${conf}" "/etc/slurm/${conf}"
    done
    export SLURM_CONF=${DIR}/slurm.conf
    slurmctld -f "${SLURM_CONF}"
    slurmd -f "${SLURM_CONF}" -N localhost
    for _ in $(seq 100); do
        if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
            echo "SLURM up (${DIR}/slurm.conf, linked from /etc/slurm)"
            return
        fi
        sleep 0.2
    done
    echo "SLURM node did not become idle; see ${DIR}/log" >&2
    sinfo -N -l >&2 || true
    exit 1
}

stop() {
    local pidfile
    for pidfile in "${DIR}/slurmd.pid" "${DIR}/slurmctld.pid" "${DIR}/munged.pid"; do
        if [ -s "${pidfile}" ]; then
            local pid
            pid=$(cat "${pidfile}")
            kill "${pid}" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
            rm -f "${pidfile}"
        fi
    done
    # Our links in /etc/slurm go too: with a config naming a stopped controller, every `scontrol`
    # (which Snakemake's SLURM plugin runs at import, in each Snakemake process) waits ~9 s for it;
    # with no config it fails at once.
    local conf
    for conf in slurm.conf gres.conf; do
        if [ "$(readlink "/etc/slurm/${conf}" 2>/dev/null)" = "${DIR}/${conf}" ]; then
            rm -f "/etc/slurm/${conf}"
        fi
    done
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
