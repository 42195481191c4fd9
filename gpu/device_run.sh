#!/bin/bash
# One call on a GPU machine (docs/gpu-check.md): the GPU check, and real `nbgrader autograde`
# of the reference and two known-wrong submissions, from wheels that gpu/fetch_wheels.sh put in .whl.
#   OUT=/somewhere gpu/device_run.sh      (the device tool sets OUT; results land there)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/gpu}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "${WHEELS:-.whl}"/*.whl || exit 3
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH   # nbgrader runs `alembic` from PATH
{ nvidia-smi; nproc; python3 -c "import sys, torch, nbgrader; print(sys.version); print('torch', torch.__version__,
'CUDA', torch.version.cuda, 'available', torch.cuda.is_available()); print('nbgrader', nbgrader.__version__)"; } \
  > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
timeout "${GPUCHECK_TIMEOUT:-420}" python3 -m coursetools.gpucheck --out "$OUT/gpu-check.md" ${GPUCHECK_ARGS:-} \
  > "$OUT/gpucheck.log" 2>&1 &
check=$!
# nbgrader starts once the timing and tolerance parts are done, so that it does not disturb the timings
until grep -q "memory cap probe" "$OUT/gpucheck.log" 2>/dev/null || ! kill -0 $check 2>/dev/null; do sleep 2; done
start=$(date +%s)
# two trials side by side, each autograding in its own throw-away copy of the course
timeout "${TRIAL_TIMEOUT:-300}" python3 -m coursetools trial submissions/reference.toml \
  > "$OUT/nbgrader-reference.log" 2>&1 &
reference=$!
timeout "${TRIAL_TIMEOUT:-300}" python3 -m coursetools trial \
  ${TRIAL_SPECS:-submissions/nb07_flipped_kernel.toml submissions/nb10_channels_not_summed.toml} \
  > "$OUT/nbgrader-wrong.log" 2>&1
wrong=$?
echo "known-wrong trial: exit $wrong after $(( $(date +%s) - start )) s" | tee -a "$OUT/nbgrader-wrong.log"
wait $reference; right=$?
echo "reference trial: exit $right after $(( $(date +%s) - start )) s" | tee -a "$OUT/nbgrader-reference.log"
wait $check; status=$?
echo "gpucheck: exit $status"
tail -40 "$OUT/gpucheck.log"
tail -5 "$OUT/nbgrader-reference.log"
grep -E "^student|^nb|torch on" "$OUT/nbgrader-wrong.log" | tail -30
[ $status -eq 0 ] && [ $wrong -eq 0 ] && [ $right -eq 0 ]
