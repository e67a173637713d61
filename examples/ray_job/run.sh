#!/usr/bin/env bash
# Profile the CPU of this machine as a Ray job:
#   1. start a Ray head on 127.0.0.1 that advertises one "platform:cpu" device, token auth on;
#   2. submit `protran-tune profile --ray-address auto ...` with `ray job submit --working-dir .`;
#   3. stop that head (only it: other Rays on the machine keep running).
# Usage (from anywhere): examples/ray_job/run.sh [extra profile options]
# Results: $OUT/protran.db (Optuna study), $OUT/mlflow.db + $OUT/mlartifacts (MLflow), $OUT/report/.
set -euo pipefail
cd "$(dirname "$0")/../.."                      # the repository root is the job's working dir
OUT=${OUT:-$PWD/ray-job-demo}
STUDY=${STUDY:-ray-job-demo}
mkdir -p "$OUT"

export RAY_AUTH_MODE=token                      # token authentication on for the head, the CLI and the job
export RAY_AUTH_TOKEN=${RAY_AUTH_TOKEN:-$(python -c 'import secrets; print(secrets.token_hex(32))')}
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0      # single-machine mode: the node address stays 127.0.0.1
free_port() { python -c 'from protran_tune.runtime import free_port; print(free_port())'; }
GCS_PORT=$(free_port); DASHBOARD_PORT=$(free_port)
RAY_TMP=$(mktemp -d /tmp/rayjob-XXXXXX)         # this head's own temp dir: how we find it to stop it
trap 'python -m protran_tune.runtime stop-ray "$RAY_TMP" >/dev/null; rm -rf "$RAY_TMP"' EXIT

# Ray's agents default to fixed ports (52365, ...): take free ones so other Rays on the machine don't clash.
ray start --head --node-ip-address 127.0.0.1 --port "$GCS_PORT" \
    --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" --temp-dir "$RAY_TMP" \
    --dashboard-agent-listen-port "$(free_port)" --dashboard-agent-grpc-port "$(free_port)" \
    --runtime-env-agent-port "$(free_port)" --metrics-export-port "$(free_port)" \
    --num-cpus "$(nproc)" --resources '{"platform:cpu": 1}' --disable-usage-stats

# Absolute storage paths: the job runs in a copy of the working dir, its results must outlive it.
ray job submit --address "http://127.0.0.1:$DASHBOARD_PORT" --working-dir . -- \
    protran-tune profile --ray-address auto --study "$STUDY" \
        --storage "sqlite:///$OUT/protran.db" --mlflow-uri "sqlite:///$OUT/mlflow.db" \
        --report-dir "$OUT/report" "$@"       # progress: one line per phase and per architecture

echo "study $STUDY in sqlite:///$OUT/protran.db; report in $OUT/report"
echo "browse: protran-tune dashboard --storage sqlite:///$OUT/protran.db"
echo "        mlflow ui --backend-store-uri sqlite:///$OUT/mlflow.db --host 127.0.0.1"
