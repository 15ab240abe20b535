#!/usr/bin/env bash
# The GPU checks of attention_tc (bf16 tensor-core attention, native/cuda/attention_tc.cu) in one
# short run, for the lent GPU machine:
#   1. build libbertj_cpu / libbertj_cuda and the two programs with g++/nvcc (as run_gpu_checks.sh)
#   2. test_cuda_vs_cpu with BJ_TEST_ONLY=attention_tc (CUDA tc vs CPU tc, both forward chunk
#      sizes, backward rerun bits, unsupported shapes)
#   3. the same on small shapes (BJ_TEST_SMALL=1) under compute-sanitizer memcheck and racecheck
#      (SANITIZE=0 skips)
#   4. bench_cuda_ops, attention rows only: fp32 attention vs attention_tc (fwd with 32- and
#      64-row chunks, bwd), B32 T128 NH12 D64 with the padding mask
# Output: stdout and $OUT (or /tmp) as text files. Exit status: the test's.
#   native/tests/run_tc_gpu_checks.sh        (about 2 minutes on 16 cores, most of it the build)
set -uo pipefail
native=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp}
mkdir -p "$out"
build=$(mktemp -d /tmp/bertj-tc-XXXX)
cuda=${CUDA_HOME:-/usr/local/cuda}
[ -x "$cuda/bin/nvcc" ] || cuda=/usr/local/cuda-13.0
export PATH="$cuda/bin:$PATH"
export LD_LIBRARY_PATH="$build:$cuda/targets/x86_64-linux/lib:$cuda/lib64:${LD_LIBRARY_PATH:-}"
jobs=$(nproc 2>/dev/null || echo 4)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

t0=$(date +%s)
inc="-I$native/include"
ls "$native"/cuda/*.cu | xargs -P "$jobs" -I{} sh -c \
  'nvcc -O3 -lineinfo -std=c++17 -Xcompiler -fPIC -DBJ_WITH_CUDA '"$inc"' \
     -gencode arch=compute_90,code=sm_90 -c {} -o '"$build"'/cuda_$(basename {} .cu).o' || exit 1
ls "$native"/cpu/*.cpp | xargs -P "$jobs" -I{} sh -c \
  'g++ -O3 -std=c++17 -fPIC -fopenmp -march=x86-64-v2 -fno-math-errno '"$inc"' \
     -c {} -o '"$build"'/cpu_$(basename {} .cpp).o' || exit 1
nvcc -shared -o "$build/libbertj_cuda.so" "$build"/cuda_*.o -lcudart || exit 1
g++ -shared -fopenmp -o "$build/libbertj_cpu.so" "$build"/cpu_*.o || exit 1
for prog in test_cuda_vs_cpu bench_cuda_ops; do
  g++ -O2 -std=c++17 -DBJ_WITH_CUDA $inc -I"$cuda/include" "$native/tests/$prog.cpp" \
    -L"$build" -lbertj_cuda -lbertj_cpu -L"$cuda/targets/x86_64-linux/lib" -L"$cuda/lib64" \
    -lcudart -Wl,-rpath,"$build" -Wl,--disable-new-dtags -o "$build/$prog" || exit 1
done
echo "build: $(( $(date +%s) - t0 )) s"

rc=0
BJ_TEST_ONLY=attention_tc "$build/test_cuda_vs_cpu" > "$out/tc_test.txt" 2>&1 || rc=$?
grep -v PASS "$out/tc_test.txt"   # failures and the summary
echo "largest CUDA-vs-CPU differences:"
grep -E "^attention_tc_(forward|backward) " "$out/tc_test.txt" | grep -o "rel [0-9.e+-]*" |
  sort -g -k2 | tail -3
echo "test_cuda_vs_cpu (attention_tc) exit $rc"
if [ "${SANITIZE:-1}" = 1 ]; then
  for tool in memcheck racecheck; do
    BJ_TEST_ONLY=attention_tc BJ_TEST_SMALL=1 compute-sanitizer --tool "$tool" --print-limit 20 \
      "$build/test_cuda_vs_cpu" > "$out/tc_sanitizer_$tool.txt" 2>&1
    echo "compute-sanitizer $tool: exit $? ($(grep -c -E '^========= (Invalid|Race|Error)' \
      "$out/tc_sanitizer_$tool.txt") reports)"
    tail -3 "$out/tc_sanitizer_$tool.txt"
  done
fi
"$build/bench_cuda_ops" 2>&1 | grep -E "attention|^\| op|mask:" | tee "$out/tc_bench.txt"
exit $rc
