#!/usr/bin/env bash
# The one-call GPU check, run on the lent GPU machine by the device tool from the repo root:
#   scripts/make-gpu-bundle.sh            (here, first)
#   device run: bash scripts/gpu-check.sh   (carry: ["bundle"], timeout ~420 s)
# Steps (each under its own timeout, so one hang does not eat the lease):
#   1. native CUDA-vs-CPU test of every op      -> $OUT/native-tests.txt
#   2. native op benchmarks (us, GB/s)          -> $OUT/native-bench.txt
#   3. Java GPU tests (JUnit console)           -> $OUT/junit/
#   4. bertj bench: BERT-base train step / inference on CUDA -> $OUT/bench.jsonl
#   5. PyTorch side by side on the same card    -> $OUT/torch.json
#   6. attn_ab: our attention and SDPA alternating, 3 rounds -> $OUT/attn-ab.txt
# and prints a short table last. BENCH_LINES (one bench argument line each) or BENCH_FILE (a file
# of such lines, e.g. scripts/bench/ab-gemm-overlap.txt) replace the default bench lines.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/bertj-out}
mkdir -p "$OUT"
B="$root/bundle"
NL=/tmp/bertj-native-libs
mkdir -p "$NL"
python3 - "$B" "$NL" <<'PY'
import glob, os, sys, zipfile
b, out = sys.argv[1], sys.argv[2]
jar = [j for j in glob.glob(b + "/lib/bertj-*.jar") if not j.endswith("tests.jar")][0]
with zipfile.ZipFile(jar) as z:
    for n in z.namelist():
        if n.startswith("org/bertj/nativ/linux-x86_64/libbertj_"):
            open(os.path.join(out, os.path.basename(n)), "wb").write(z.read(n))
PY
export LD_LIBRARY_PATH="/usr/local/cuda-13.0/targets/x86_64-linux/lib:$NL:$B/native:${LD_LIBRARY_PATH:-}"
STEPS=${STEPS:-native,bench_native,bench_gemm,junit,bench,torch,attn_ab,hf,nsys}
has() { [[ ",$STEPS," == *",$1,"* ]]; }
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$OUT/log.txt"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
tar xzf "$B/jre.tgz" -C /tmp
JAVA=/tmp/bertj-jre/bin/java
CP=$(ls "$B"/lib/*.jar | grep -v -E 'junit-console|benchmarks.jar' | tr '\n' ':')
JOPTS="-Xmx16g -Dbertj.golden.dir=$B/shared/golden -Dorg.bytedeco.javacpp.logger.debug=false"

if has native; then
  stamp "native CUDA-vs-CPU tests"
  timeout 120 "$B/native/test_cuda_vs_cpu" > "$OUT/native-tests.txt" 2>&1; echo "rc=$?" >> "$OUT/native-tests.txt"
  tail -3 "$OUT/native-tests.txt"
fi
if has bench_native; then
  stamp "native op benchmarks"
  timeout 90 "$B/native/bench_cuda_ops" > "$OUT/native-bench.txt" 2>&1; echo "rc=$?" >> "$OUT/native-bench.txt"
fi
if has bench_gemm; then
  stamp "cuBLAS GEMM timings of one BERT layer (fp32, bf16)"
  cuda=/usr/local/cuda-13.0
  [ -x "$B/native/bench_gemm" ] && bg="$B/native/bench_gemm" || {
    bg=/tmp/bench_gemm
    "$cuda/bin/nvcc" -O2 -std=c++17 native/tests/bench_gemm.cpp -o "$bg" -lcublas -lcublasLt > "$OUT/bench-gemm-build.txt" 2>&1; }
  timeout 60 "$bg" 4096 > "$OUT/bench-gemm.txt" 2>&1; echo "rc=$?" >> "$OUT/bench-gemm.txt"
  timeout 60 "$bg" 32768 >> "$OUT/bench-gemm.txt" 2>&1
fi
if has sanitize; then
  stamp "compute-sanitizer memcheck / racecheck on small attention_tc and attention shapes"
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -n "$cs" ]; then
    for tool in memcheck racecheck; do
      BJ_TEST_ONLY=attention_tc BJ_TEST_SMALL=1 timeout 90 "$cs" --tool $tool --error-exitcode 3 \
        "$B/native/test_cuda_vs_cpu" > "$OUT/sanitize-$tool.txt" 2>&1
      echo "rc=$?" >> "$OUT/sanitize-$tool.txt"
      echo "$tool: $(grep -E 'ERROR SUMMARY|passed' "$OUT/sanitize-$tool.txt" | tr '\n' ' ') $(tail -1 "$OUT/sanitize-$tool.txt")"
    done
  else
    stamp "no compute-sanitizer on this machine"
  fi
fi
if has junit; then
  stamp "Java GPU tests"
  timeout 180 "$JAVA" $JOPTS -jar "$B/lib/junit-console.jar" execute --disable-banner --details=tree \
    -cp "$CP$B/lib/bertj-tests.jar" ${JUNIT_SELECT:---select-class org.bertj.backend.CudaVsCpuTest --select-class org.bertj.model.GoldenParityCudaTest --select-class org.bertj.model.GoldenBf16CudaTest --select-class org.bertj.model.AdamWBf16MirrorTest --select-class org.bertj.backend.GraphCudaTest --select-class org.bertj.train.GraphStepCudaTest} \
    --reports-dir "$OUT/junit" > "$OUT/junit.txt" 2>&1; echo "rc=$?" >> "$OUT/junit.txt"
  grep -E "tests (successful|failed|skipped|aborted)|rc=" "$OUT/junit.txt"
fi
if has bench; then
  stamp "bertj bench (CUDA)"
  [ -n "${BENCH_FILE:-}" ] && [ -z "${BENCH_LINES:-}" ] && BENCH_LINES=$(cat "$BENCH_FILE")
  while IFS= read -r args; do
    [ -z "$args" ] && continue
    # tokens starting with -D are JVM system properties (e.g. -Dbertj.cublaslt=true), tokens
    # starting with + are environment variables for that line (e.g. +BJ_ATTN_IMPL=v1)
    props=""; envs=""; rest=""
    for tok in $args; do
      case $tok in -D*) props="$props $tok";; +*) envs="$envs ${tok#+}";; *) rest="$rest $tok";; esac
    done
    [ -n "$envs$props" ] && echo "{\"bench_settings\":\"${envs# }${props}\"}" >> "$OUT/bench.jsonl"
    env $envs timeout 120 "$JAVA" $JOPTS $props -cp "$CP" org.bertj.cli.Main bench --device cuda $rest >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
  done <<< "${BENCH_LINES:-"--model bert-base --batch 32 --seq 128 --mode train
--model bert-base --batch 32 --seq 128 --mode train --precision bf16
--model bert-base --batch 256 --seq 128 --mode train --precision bf16
--model bert-base --batch 128 --seq 128 --mode infer
--model bert-base --batch 128 --seq 128 --mode infer --precision bf16
--model minilm --batch 32 --seq 128 --mode train
--model minilm --batch 32 --seq 128 --mode train --precision bf16"}"
fi
if has nsys; then
  nsys_bin=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
  if [ -n "$nsys_bin" ]; then
    stamp "nsys kernel summary of the bert-base train step"
    timeout 120 "$nsys_bin" profile -t cuda -o /tmp/bertj-prof --force-overwrite true \
      "$JAVA" $JOPTS -cp "$CP" org.bertj.cli.Main bench --device cuda --model bert-base --batch 32 --seq 128 \
      --warmup 2 --iters 5 > /dev/null 2>&1
    timeout 60 "$nsys_bin" stats -r cuda_gpu_kern_sum -f csv /tmp/bertj-prof.nsys-rep > "$OUT/nsys-kernels.csv" 2>/dev/null
    head -30 "$OUT/nsys-kernels.csv" | cut -c1-220
  else
    stamp "no nsys on this machine"
  fi
fi
if has torch; then
  stamp "PyTorch reference"
  timeout 200 python3 scripts/torch_reference.py > "$OUT/torch.json" 2> "$OUT/torch.err"
fi
if has attn_ab; then
  # SDPA's fp32 time moved by up to 40% between calls of the same day: ours and SDPA alternate
  # three times here, so each ratio has its own same-minute reference
  stamp "attention: bertj and SDPA alternating, 3 rounds"
  for round in 1 2 3; do
    echo "round $round" >> "$OUT/attn-ab.txt"
    BJ_BENCH_ONLY=attention,attention_tc timeout 60 "$B/native/bench_cuda_ops" 2>&1 \
      | grep -E "B32 T128 NH12 D64 mask p=0.0 \[v3\]|attention_tc (fwd|bwd|fwd\+bwd) +\| B32 T128 NH12 D64 mask p=0.0" >> "$OUT/attn-ab.txt"
    TORCH_PARTS=sdpa_figures,sdpa_bf16_figures timeout 60 python3 scripts/torch_reference.py >> "$OUT/attn-ab.txt" 2>/dev/null
  done
  cat "$OUT/attn-ab.txt"
fi
if has hf && [ -d "$B/hf/single" ]; then
  stamp "transformers loads bertj's fine-tuned folder"
  timeout 90 python3 scripts/check_hf_load.py "$B/hf/single" > "$OUT/hf-load.txt" 2>&1; echo "rc=$?" >> "$OUT/hf-load.txt"
fi
stamp "done"

echo "================ summary ================"
cat "$OUT/gpu.txt"
[ -f "$OUT/native-tests.txt" ] && grep -E "passed|FAIL" "$OUT/native-tests.txt" | tail -8
[ -f "$OUT/native-bench.txt" ] && cat "$OUT/native-bench.txt" | tail -25
for f in "$OUT"/sanitize-*.txt; do [ -f "$f" ] && echo "$(basename "$f"): $(grep -E 'ERROR SUMMARY' "$f") $(tail -1 "$f")"; done
[ -f "$OUT/bench-gemm.txt" ] && grep -E "per layer|x12" "$OUT/bench-gemm.txt"
[ -f "$OUT/junit.txt" ] && grep -E "tests (successful|failed|skipped)|rc=" "$OUT/junit.txt"
[ -f "$OUT/bench.jsonl" ] && cat "$OUT/bench.jsonl"
[ -f "$OUT/torch.json" ] && cat "$OUT/torch.json"
[ -f "$OUT/hf-load.txt" ] && tail -2 "$OUT/hf-load.txt"
exit 0
