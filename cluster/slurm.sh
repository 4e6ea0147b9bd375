#!/bin/bash
# dynsweep on a SLURM allocation: a Ray head on the first node, a worker on every other node,
# then the sweep's driver on the head. Submit with:
#
#   sbatch cluster/slurm.sh search_spaces/twobody_asha.yaml [--set key=value ...]
#
# Every node needs the same Python environment with dynsweep installed (a shared venv or
# module), and $SHARED a file system all nodes see: sweep folders and datasets live there, so a
# sweep preempted by SLURM (it sends SIGTERM, which dynsweep handles like Ctrl-C) resumes from
# any node with `dynsweep resume $SHARED/runs/<name> --address ...`.
#
# Token authentication: a fresh token per job, given to every Ray process via RAY_AUTH_TOKEN
# (exported below; srun passes the environment on). Nothing is written to ~/.ray.
#SBATCH --job-name=dynsweep
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=32
#SBATCH --gpus-per-task=1
#SBATCH --time=24:00:00
#SBATCH --signal=B:TERM@120
set -euo pipefail

SPEC=${1:?usage: sbatch cluster/slurm.sh SPEC.yaml [dynsweep launch options]}
shift
SHARED=${SHARED:-$HOME/dynsweep-shared}
PORT=${RAY_PORT:-6379}
mkdir -p "$SHARED/runs" "$SHARED/datasets"
export DYNSWEEP_DATASETS="$SHARED/datasets"
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$(python -c "import secrets; print(secrets.token_hex(32))")
export RAY_AUTH_TOKEN

mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
HEAD=${NODES[0]}
HEAD_IP=$(srun --nodes=1 --ntasks=1 -w "$HEAD" hostname --ip-address | awk '{print $1}')
ADDRESS="$HEAD_IP:$PORT"
TMP=/tmp/ray-$SLURM_JOB_ID                      # node-local Ray temp folder, removed at the end

srun --nodes=1 --ntasks=1 -w "$HEAD" \
    ray start --head --node-ip-address="$HEAD_IP" --port="$PORT" --temp-dir="$TMP" \
        --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="${SLURM_GPUS_PER_TASK:-0}" --block &
sleep 15
for node in "${NODES[@]:1}"; do
    srun --nodes=1 --ntasks=1 -w "$node" \
        ray start --address="$ADDRESS" --temp-dir="$TMP" \
            --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="${SLURM_GPUS_PER_TASK:-0}" --block &
    sleep 2
done
sleep 10

# The driver: on preemption SLURM sends SIGTERM; dynsweep stops trials, saves state and exits 130.
dynsweep launch "$SPEC" --address "$ADDRESS" --set storage="$SHARED/runs" "$@" &
DRIVER=$!
trap 'kill -TERM $DRIVER 2>/dev/null; wait $DRIVER' TERM
wait $DRIVER
STATUS=$?
srun --nodes="${#NODES[@]}" --ntasks-per-node=1 rm -rf "$TMP" || true
exit $STATUS
