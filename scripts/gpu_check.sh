#!/usr/bin/env bash
# genesis's GPU check, for one NVIDIA GPU: the cuda-marked tests, the Triton kernel tests compiled
# for the GPU, and both GPU benchmarks. Logs and JSON results go to $OUT (default ./gpu-results).
# Sized to finish in under 8 minutes on an H200 (each stage has its own time limit).
#
#     bash scripts/gpu_check.sh
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-results}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1

# The GPU extra (CuPy, Triton, nvidia-ml-py): use what is installed, else install it.
if ! $PY -c "import cupy, triton, pynvml" 2>/dev/null; then
    cuda_major=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -1)
    extra=$([ "${cuda_major:-12}" -ge 13 ] && echo cuda13 || echo cuda)
    $PY -m pip install -q --retries 1 --timeout 20 ".[$extra]" || echo "could not install .[$extra]"
fi
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    $PY -c "import cupy, triton, torch, numpy; print('cupy', cupy.__version__, '| triton', \
triton.__version__, '| torch', torch.__version__, '| numpy', numpy.__version__)"
    $PY -c "import genesis; print('genesis sees', genesis.cuda.device_count(), 'GPU(s):', \
genesis.cuda.get_device_name(), '| bf16:', genesis.cuda.is_bf16_supported())"
} 2>&1 | tee "$OUT/env.txt"

status=0
run() {  # run <name> <seconds> <command...>: log to $OUT/<name>.log, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | tail -25
    local rc=${PIPESTATUS[0]}
    echo "== $name exit $rc"
    [ "$rc" -eq 0 ] || status=1
}

run cuda_tests 240 $PY -m pytest -q -p no:cacheprovider -m cuda -rfE tests
run triton_tests 90 $PY -m pytest -q -p no:cacheprovider -rfE tests/triton
run gpu_kernels 75 $PY benchmarks/gpu_kernels.py --quick --json "$OUT/gpu_kernels.json"
run gpu_train_step 75 $PY benchmarks/gpu_train_step.py --batch 4 --seq 512 --steps 5 \
    --warmup 2 --json "$OUT/gpu_train_step.json"
exit $status
