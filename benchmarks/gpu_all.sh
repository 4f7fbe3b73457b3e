#!/usr/bin/env bash
# Every benchmark that has a CUDA side, in one go, on a machine with one GPU:
#     bash benchmarks/gpu_all.sh benchmarks/results
# Each step has its own time limit and log; a failed step does not stop the others.
set -u
out=${1:?usage: gpu_all.sh OUTPUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name().split()[1].lower())")
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name"
  timeout "$limit" "$@" --out "$out/$name.json" >"$out/$name.log" 2>&1
  echo "rc $?"; grep -E "x[0-9.]+$|MFU|identical|^[a-z_]+ +[0-9]" "$out/$name.log" | tail -8
}
step "bench_mfu_$gpu" 240 python3 bench_mfu.py
step "bench_train_micro_$gpu" 150 python3 bench_train.py --device cuda --variants baseline_trainer_padded_bf16 \
  peftbench_packed peftbench_packed_bf16 peftbench_packed_bf16_liger --reps 3
step "bench_train_100m_$gpu" 150 python3 bench_train.py --device cuda --model 100m --variants baseline_trainer_padded_bf16 \
  peftbench_packed peftbench_packed_bf16 peftbench_packed_bf16_liger --reps 3
step "bench_eval_micro_math_$gpu" 150 python3 bench_eval.py --device cuda --tasks micro-math --per-task 200 --reps 3
