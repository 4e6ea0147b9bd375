#!/bin/bash
# dynsweep on a SLURM allocation: a Ray head on the first node, a Ray worker on every other node,
# then the sweep's driver on the head node. Submit from the repository root with:
#
#   sbatch cluster/slurm.sh search_spaces/twobody_asha.yaml [dynsweep launch options ...]
#
# Every node needs the same Python environment with dynsweep installed (a shared venv, conda env
# or module: activate it before sbatch, or in SETUP below), and $SHARED a file system every node
# sees (NFS, Lustre, GPFS): sweep folders ($SHARED/runs) and datasets ($SHARED/datasets) live
# there. Object-store URIs (s3://, gs://) are not supported as sweep storage.
#
# Preemption and time limits, end to end:
#   - `--signal=B:TERM@180` makes SLURM send SIGTERM to this script 180 s before the time
#     limit. The script passes it to the driver, which stops the trials, saves the sweep's state
#     and exits 130; the script then requeues the job (`scontrol requeue`).
#   - On preemption (PreemptMode=REQUEUE) SLURM sends SIGTERM to every process of the job; Ray
#     goes down with its nodes, so running trials lose the steps since their last checkpoint.
#     `--requeue` puts the job back in the queue.
#   - A requeued job runs this script again: `dynsweep launch --resume-existing` resumes the
#     sweep when its folder exists (errored trials from their last checkpoint) and launches it
#     when it does not. By hand: `dynsweep resume $SHARED/runs/<name> --address <head:port>`.
#
# GPUs: however the job asks for them (--gpus-per-node, --gpus-per-task, --gres=gpu:N), each
# node's Ray advertises the GPUs SLURM gave that node (SLURM_GPUS_ON_NODE, else the devices in
# CUDA_VISIBLE_DEVICES, else none).
#
# Token authentication: a fresh token per job, given to every Ray process and the driver via
# RAY_AUTH_TOKEN (exported below; srun passes the environment on). Nothing is written to ~/.ray.
#
# Environment: SHARED (default $HOME/dynsweep-shared), RAY_PORT (default 6379), SETUP (a command
# run first on every node, e.g. "source ~/venvs/dynsweep/bin/activate"), HEAD_WAIT_S (default 300),
# HEAD_IP (the head's address on the network the nodes share, when `hostname --ip-address` on the
# head gives another one). Ray's other ports are its defaults: ask for whole nodes (--exclusive)
# where two jobs could share one.
#SBATCH --job-name=dynsweep
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=32
#SBATCH --gpus-per-node=1
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=B:TERM@180
set -uo pipefail   # not -e: a failing driver or a signal must still reach the cleanup below

SCONTROL=${SCONTROL:-scontrol}
DRIVER=""
TERM_SEEN=0
RAY_STEPS=()

log() { echo "[$(date '+%F %T')] slurm.sh: $*" >&2; }

# The GPUs SLURM gave this node, however they were requested.
node_gpus() {
    if [[ -n "${SLURM_GPUS_ON_NODE:-}" ]]; then
        echo "${SLURM_GPUS_ON_NODE}"
    elif [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
        local devices
        IFS=, read -r -a devices <<< "${CUDA_VISIBLE_DEVICES}"
        echo "${#devices[@]}"
    else
        echo 0
    fi
}

# Wait until the Ray head at $1 answers (the token is in the environment); fail after HEAD_WAIT_S.
# Gives up at once on SIGTERM or when the head's step died.
wait_for_head() {
    local address=$1 deadline=$((SECONDS + ${HEAD_WAIT_S:-300}))
    until ray status --address "$address" > /dev/null 2>&1; do
        if ((TERM_SEEN)) || ! kill -0 "${RAY_STEPS[0]}" 2> /dev/null; then
            log "the Ray head did not start (or the job was signalled); see its output above"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "the Ray head at $address did not answer within ${HEAD_WAIT_S:-300} s"
            return 1
        fi
        sleep 2
    done
    log "Ray head at $address is up"
}

# Start `ray start ... --block` on one node as a job step, in the background.
start_ray_on() {
    local node=$1
    shift
    # shellcheck disable=SC2016  # expanded on the node, not here
    srun --nodes=1 --ntasks=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" --overlap -w "$node" bash -c \
        "$(declare -f node_gpus); ${SETUP:-true} && exec ray start \"\$@\" --num-gpus=\$(node_gpus) --block" \
        ray-start "$@" &
    RAY_STEPS+=("$!")
}

# SIGTERM (SLURM's signal before the time limit, or preemption): pass it to the driver once.
on_term() {
    TERM_SEEN=1
    log "SIGTERM: stopping the sweep (trials stop, state is saved)"
    if [[ -n "$DRIVER" ]]; then
        kill -TERM "$DRIVER" 2> /dev/null
    fi
}

# Stop this job's Ray processes and remove their node-local temp folders.
cleanup() {
    local pid
    for pid in "${RAY_STEPS[@]}"; do
        kill -TERM "$pid" 2> /dev/null
    done
    for pid in "${RAY_STEPS[@]}"; do
        wait "$pid" 2> /dev/null
    done
    srun --overlap --nodes="${#NODES[@]}" --ntasks-per-node=1 rm -rf "$RAY_TMP" || true
}

# Run the driver in the background (SIGTERM reaches it through on_term), wait until it ends
# for good, and return its exit status.
run_driver() {
    local status last
    dynsweep launch "$@" &
    DRIVER=$!
    wait "$DRIVER"
    status=$?
    while ((status > 128)) && kill -0 "$DRIVER" 2> /dev/null; do   # a trap ended `wait` early
        wait "$DRIVER"
        status=$?
    done
    if ((status > 128)); then   # it ended as the trap ran: its own exit status (bash keeps it)
        wait "$DRIVER"
        last=$?
        ((last != 127)) && status=$last
    fi
    DRIVER=""
    return "$status"
}

main() {
    local spec=${1:?usage: sbatch cluster/slurm.sh SPEC.yaml [dynsweep launch options]}
    shift
    SHARED=${SHARED:-$HOME/dynsweep-shared}
    local port=${RAY_PORT:-6379}
    eval "${SETUP:-true}"
    mkdir -p "$SHARED/runs" "$SHARED/datasets" || exit 2
    export DYNSWEEP_DATASETS="$SHARED/datasets"
    export RAY_AUTH_MODE=token
    RAY_AUTH_TOKEN=$(python -c "import secrets; print(secrets.token_hex(32))") || exit 2
    export RAY_AUTH_TOKEN
    trap on_term TERM

    mapfile -t NODES < <("$SCONTROL" show hostnames "$SLURM_JOB_NODELIST")
    local head=${NODES[0]}
    local head_ip
    head_ip=${HEAD_IP:-$(srun --nodes=1 --ntasks=1 --overlap -w "$head" hostname --ip-address | awk '{print $1}')}
    local address="$head_ip:$port"
    RAY_TMP=/tmp/ray-$SLURM_JOB_ID     # node-local Ray temp folder (short: socket paths), removed at the end
    log "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}): head $head ($address), ${#NODES[@]} node(s)"

    local status=2 ran=0
    start_ray_on "$head" --head --node-ip-address="$head_ip" --port="$port" --temp-dir="$RAY_TMP" \
        --num-cpus="${SLURM_CPUS_PER_TASK:-1}" --disable-usage-stats
    if ((TERM_SEEN == 0)) && wait_for_head "$address" && ((TERM_SEEN == 0)); then
        local node
        for node in "${NODES[@]:1}"; do
            start_ray_on "$node" --address="$address" --temp-dir="$RAY_TMP" --num-cpus="${SLURM_CPUS_PER_TASK:-1}"
        done
        # The same command for a first start and a requeue: a sweep that exists is resumed.
        ran=1
        run_driver "$spec" --address "$address" --set storage="$SHARED/runs" --resume-existing "$@"
        status=$?
        log "driver exited with status $status"
    fi
    cleanup
    if ((TERM_SEEN)) && ((status == 130 || ran == 0)); then   # stopped cleanly, or before the driver ran
        log "requeueing job $SLURM_JOB_ID: the sweep continues when it starts again"
        "$SCONTROL" requeue "$SLURM_JOB_ID" || log "scontrol requeue failed (SLURM may requeue a preempted job itself)"
    fi
    exit "$status"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
