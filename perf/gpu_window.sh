#!/usr/bin/env bash
# The one command of a GPU window: run it from the repository root on a machine with a GPU.
#
#   bash perf/gpu_window.sh                 # on the GPU machine: <= 9 minutes in all
#   DRY_RUN=1 bash perf/gpu_window.sh       # on a CPU machine: the same stages, kernel-test
#                                           # mode, tiny sizes, CUDA-only steps skipped (CI)
#
# Stages, in order of value, each under its own `timeout` (budgets in seconds below):
#   1 env        nvidia-smi, versions; offline install (pip --no-index --no-build-isolation),
#                falling back to a copy of the package on PYTHONPATH
#   2 info       `python -m tritonvision info`: every op once
#   3 gpu-tests  `pytest -m gpu` over the cores (xdist), per-test timeouts, junit XML, durations
#   4 smoke      perf/kernel_smoke.py in 8 parallel processes: every kernel variant once at odd
#                sizes, compared with the CPU path (and Triton's cache warmed for the next stage)
#     memcheck   compute-sanitizer memcheck (caching allocator off) over the same smoke run
#   5 bench      the benchmark, one family at a time with a budget, saved after every case;
#                then torch.compile baselines and the models while time remains
#     sweep      launch-table variants of the weakest kernels timed side by side (perf/sweep.py)
#   6 resources  registers, spills and occupancy of the kernels that ran (Triton's cache)
#   7 summary    passed / failed / timed out per stage, and the headline ratios (printed last)
#
# STAGES="gpu-tests bench-late" runs only the stages named (default: all; env always runs),
# FAMILIES=box_iou,nms the benchmark families, TEST_PATHS="tests/test_nms.py" (or PYTEST_ARGS)
# narrows the GPU tests:
# for a second, shorter window that re-checks what a fix changed.
# Everything goes to $OUT (default ./gpu-window-out) as at most 4 files, re-packed after
# every stage so that a killed run still returns what finished: summary.txt, window.tar.gz
# (every log, junit XML, bench JSON/markdown/chart, resource tables), bench.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-window-out}
DRY_RUN=${DRY_RUN:-0}
PY=${PYTHON:-python3}
case $PY in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac  # absolute: stages cd
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-window.XXXXXX")
export TRITON_CACHE_DIR=$WORK/triton-cache PYTHONUNBUFFERED=1
START=$(date +%s)
STAGES=${STAGES:-info gpu-tests smoke memcheck bench sweep bench-late resources}
want() { [[ " $STAGES " == *" $1 "* ]]; }

if [ "$DRY_RUN" = 1 ]; then
    export TRITON_INTERPRET=1
    DEVICE=cpu SIZE=tiny XDIST=2 TEST_TIMEOUT=300 N_SETS=1 SHARDS=2
    B_ENV=120 B_INFO=60 B_TESTS=90 B_SMOKE=120 B_MEMCHECK=0 B_BENCH=90 B_SWEEP=0 B_LATE=60 B_RESOURCES=150
    FAMILY_BUDGET=4 LATE_FAMILY_BUDGET=5
else
    DEVICE=cuda SIZE=full XDIST=8 TEST_TIMEOUT=90 N_SETS=3 SHARDS=8
    B_ENV=30 B_INFO=30 B_TESTS=${B_TESTS:-150} B_SMOKE=60 B_MEMCHECK=80 B_BENCH=${B_BENCH:-110}
    B_SWEEP=${B_SWEEP:-60} B_LATE=90 B_RESOURCES=30
    FAMILY_BUDGET=${FAMILY_BUDGET:-18} LATE_FAMILY_BUDGET=30
fi
# ops families first (their anchors and eager torch), compile baselines and the models last;
# detection_map and masks are CPU work whatever the device, so they are not run here; nms
# last (its 100k-box case is the likeliest to eat a budget). The dry run's late
# stage times the models against eager only (compiling on 2 CPU cores takes minutes).
FAMILIES=${FAMILIES:-box_iou,dice_ce,deconv,confusion_matrix,upsample,mask_iou,nms}
if [ "$DRY_RUN" = 1 ]; then LATE_OPS=models LATE_BASELINES=eager
else LATE_OPS=$FAMILIES,models LATE_BASELINES=compile; fi

echo -e "stage\tstatus\tseconds\tbudget" > "$WORK/stages.tsv"

pack() {
    "$PY" "$ROOT/perf/window_summary.py" "$WORK" > "$WORK/summary.txt" 2>>"$WORK/summary-errors.log" \
        || echo "summary failed: see summary-errors.log" > "$WORK/summary.txt"
    cp "$WORK/summary.txt" "$OUT/summary.txt"
    find "$WORK/results" -name 'window.md' -exec cp {} "$OUT/bench.md" \; 2>/dev/null
    tar czf "$OUT/window.tar.gz.tmp" -C "$WORK" --exclude triton-cache --exclude pysite . \
        && mv "$OUT/window.tar.gz.tmp" "$OUT/window.tar.gz"
}

# stage NAME BUDGET COMMAND...: run under timeout, log to $WORK/NAME.log, record the status
stage() {
    local name=$1 budget=$2; shift 2
    local t0=$(date +%s) status
    echo "== $name (budget ${budget} s)"
    timeout -k 10 "$budget" "$@" > "$WORK/$name.log" 2>&1
    case $? in
        0) status=passed ;;
        124|137) status=timed-out ;;
        *) status=failed ;;
    esac
    echo -e "$name\t$status\t$(( $(date +%s) - t0 ))\t$budget" >> "$WORK/stages.tsv"
    echo "   $status in $(( $(date +%s) - t0 )) s"
    tail -n 3 "$WORK/$name.log" | sed 's/^/   | /'
    pack
}

skip_stage() {
    echo -e "$1\tskipped\t0\t0" >> "$WORK/stages.tsv"
    echo "$2" > "$WORK/$1.log"
    echo "== $1: skipped ($2)"
}

stage_env() {
    nvidia-smi || echo "no nvidia-smi (DRY_RUN=$DRY_RUN)"
    "$PY" - <<'PY'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| devices", torch.cuda.device_count())
for module in ("triton", "torchvision", "numpy", "xdist", "pytest_timeout", "pytest_benchmark"):
    try:
        print(module, __import__(module).__version__)
    except Exception as error:
        print(module, "missing:", error)
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"cuda:{i} {p.name} sm_{p.major}{p.minor} {p.multi_processor_count} SMs "
              f"{p.total_memory / 2**30:.0f} GiB")
PY
    command -v compute-sanitizer && compute-sanitizer --version | tail -1
    if "$PY" -m pip install --no-index --no-build-isolation --no-deps -e "$ROOT"; then
        echo "installed: pip install --no-index --no-build-isolation --no-deps -e ."
    else
        echo "pip install failed; falling back to a copy of the package on PYTHONPATH ($WORK/pysite)"
    fi
    "$PY" -c "import tritonvision.kernels, tritonvision.ops; print('import ok', tritonvision.__file__)"
}

# the install happens in this shell's child; decide here whether the fallback is needed
stage env "$B_ENV" bash -c "$(declare -f stage_env); PY='$PY' ROOT='$ROOT' WORK='$WORK' DRY_RUN='$DRY_RUN' stage_env"
if ! (cd /tmp && "$PY" -c "import tritonvision.kernels, tritonvision.ops") >/dev/null 2>&1; then
    mkdir -p "$WORK/pysite"
    cp -r "$ROOT/tritonvision" "$WORK/pysite/" && cp -r "$ROOT/kernels" "$WORK/pysite/tritonvision/kernels"
    export PYTHONPATH="$WORK/pysite${PYTHONPATH:+:$PYTHONPATH}"
    echo "   fallback: tritonvision imported from $WORK/pysite" | tee -a "$WORK/env.log"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"   # perf/ is a source-tree package

want info && stage info "$B_INFO" "$PY" -m tritonvision info --device "$DEVICE"

XDIST_ARGS=()
"$PY" -c "import xdist" 2>/dev/null && XDIST_ARGS=(-n "$XDIST")
want gpu-tests && stage gpu-tests "$B_TESTS" "$PY" -m pytest ${TEST_PATHS:-tests} -m gpu -q -p no:cacheprovider \
    "${XDIST_ARGS[@]}" --timeout "$TEST_TIMEOUT" --junitxml "$WORK/gpu-tests.xml" --durations 25 -rfEs \
    ${PYTEST_ARGS:-}

# the CPU torch-path outputs the smoke runs are compared with, computed once (no sanitizer)
SMOKE_REF=$WORK/kernel-smoke-reference.pt
if want smoke || want memcheck; then
    timeout 120 env -u TRITON_INTERPRET "$PY" perf/kernel_smoke.py --save-reference "$SMOKE_REF" \
        > "$WORK/kernel-smoke-reference.log" 2>&1
fi

smoke_shards() {  # every call once, in $SHARDS processes (each compiles its share of the kernels)
    local k status=0
    for k in $(seq 0 $(( SHARDS - 1 ))); do
        "$PY" perf/kernel_smoke.py --device "$DEVICE" --reference "$SMOKE_REF" --shard "$k/$SHARDS" &
    done
    for k in $(seq 1 "$SHARDS"); do wait -n || status=1; done
    return $status
}
want smoke && stage smoke "$B_SMOKE" bash -c "$(declare -f smoke_shards); PY='$PY' DEVICE='$DEVICE' \
    SMOKE_REF='$SMOKE_REF' SHARDS='$SHARDS' smoke_shards"

if ! want memcheck || [ "$DRY_RUN" = 1 ]; then
    :   # no sanitizer without a GPU: the dry run's smoke stage ran the same calls in the interpreter
elif command -v compute-sanitizer >/dev/null; then
    # if the tool refuses the device, the log says so and the stage fails; the window goes on
    stage memcheck "$B_MEMCHECK" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck \
        --error-exitcode 9 --print-limit 50 "$PY" perf/kernel_smoke.py --device cuda --reference "$SMOKE_REF"
else
    skip_stage memcheck "compute-sanitizer not found"
fi

BENCH=("$PY" -m perf --device "$DEVICE" --size "$SIZE" --n-sets "$N_SETS" --results-dir "$WORK/results")
want bench && stage bench "$B_BENCH" "${BENCH[@]}" --ops "$FAMILIES" --skip compile --family-budget "$FAMILY_BUDGET" \
    --save window --note "gpu_window.sh stage 5 (DRY_RUN=$DRY_RUN)"
if ! want sweep; then
    :
elif [ "$DRY_RUN" = 1 ]; then
    skip_stage sweep "needs CUDA (perf/sweep.py times kernels on the GPU)"
else
    stage sweep "$B_SWEEP" "$PY" -m perf.sweep --out "$WORK/sweep"
fi

ELAPSED=$(( $(date +%s) - START ))
TOTAL=${TOTAL:-$([ "$DRY_RUN" = 1 ] && echo 600 || echo 540)}
LATE=$(( TOTAL - ELAPSED - B_RESOURCES - 15 ))
if ! want bench-late; then
    :
elif [ "$LATE" -gt 20 ]; then
    [ "$LATE" -gt "$B_LATE" ] || B_LATE=$LATE
    stage bench-late "$B_LATE" "${BENCH[@]}" --ops "$LATE_OPS" --baselines "$LATE_BASELINES" \
        --family-budget "$LATE_FAMILY_BUDGET" --save window-compile --note "gpu_window.sh stage 5b"
else
    skip_stage bench-late "no time left (${ELAPSED} s spent of ${TOTAL})"
fi

if ! want resources; then
    :
elif [ "$DRY_RUN" = 1 ]; then
    stage resources "$B_RESOURCES" env -u TRITON_INTERPRET "$PY" -m perf.resources --out "$WORK/resources"
else
    stage resources "$B_RESOURCES" "$PY" -m perf.resources --from-cache "$TRITON_CACHE_DIR" --out "$WORK/resources"
fi

pack
echo
cat "$OUT/summary.txt"
echo "(all files: $OUT; $(( $(date +%s) - START )) s in all)"
# exit 1 when a stage failed or ran out of time (CI runs the dry run: every stage must pass)
! cut -f2 "$WORK/stages.tsv" | grep -qE '^(failed|timed-out)$'
