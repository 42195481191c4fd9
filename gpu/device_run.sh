#!/bin/bash
# One call on a GPU machine (docs/gpu-check.md): the GPU check, and real `nbgrader autograde`
# of the whole sample corpus, from the wheels that gpu/fetch_wheels.sh put in .whl.
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
# The grading sandbox (docs/grading-guarantees.md): the machine's bubblewrap, else the one fetch_wheels.sh carried.
command -v bwrap >/dev/null || export PATH="$PWD/${WHEELS:-.whl}/sandbox/bin:$PATH"
python3 -m coursetools.grader.sandbox > "$OUT/sandbox.txt" 2>&1; sandbox=$?
cat "$OUT/sandbox.txt"
corpus_flags=""
if [ $sandbox -ne 0 ]; then
  corpus_flags="--no-sandbox"
  echo "THE SANDBOX DID NOT START HERE: the corpus is graded with --no-sandbox (sandbox.txt says why)"
fi
timeout "${GPUCHECK_TIMEOUT:-420}" python3 -m coursetools.tools.gpucheck --out "$OUT/gpu-check.md" ${GPUCHECK_ARGS:-} \
  > "$OUT/gpucheck.log" 2>&1 &
check=$!
# nbgrader starts once the timing and tolerance parts are done, so that it does not disturb the timings
until grep -q "memory cap probe" "$OUT/gpucheck.log" 2>/dev/null || ! kill -0 $check 2>/dev/null; do sleep 2; done
# every spec in submissions/, graded by grade-parallel in a throw-away course copy, checked against its spec
corpus=/tmp/session10-corpus
timeout "${CORPUS_TIMEOUT:-420}" python3 -m coursetools.tools.corpus --keep $corpus --workers "${CORPUS_WORKERS:-8}" \
  --json "$OUT/corpus.json" $corpus_flags ${CORPUS_SPECS:-} > "$OUT/nbgrader-corpus.log" 2>&1
graded=$?
# which device the hidden tests' reference convolutions ran on, as the feedback names it
grep -rhoE "reference: torch on [a-z]+" $corpus/autograded | sort | uniq -c | tee -a "$OUT/nbgrader-corpus.log"
wait $check; status=$?
# every notebook graded in the sandbox, and the sandbox reached CUDA (the probe names the GPU)
grep -rhoE '"sandbox": "[a-z]+"' $corpus/autograded | sort | uniq -c | tee -a "$OUT/nbgrader-corpus.log"
echo "gpucheck: exit $status; corpus: exit $graded; sandbox probe: exit $sandbox"
tail -12 "$OUT/gpucheck.log"
grep -v "autograde: " "$OUT/nbgrader-corpus.log" | tail -8
[ $status -eq 0 ] && [ $graded -eq 0 ] && [ $sandbox -eq 0 ]
