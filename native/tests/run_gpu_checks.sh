#!/usr/bin/env bash
# Runs the CUDA checks on a machine with a GPU, in one go: builds libbertj_cpu/libbertj_cuda and
# the two programs straight with g++/nvcc (no CMake needed there), then runs
#   test_cuda_vs_cpu   every CUDA op against the CPU op (exit 1 on a failure)
#   bench_cuda_ops     kernel timings (table)
# then the attention rows again with the dK/dV kernel's other query tile (KV_VARIANT=0 skips it),
# and, with SANITIZE=1, the test again under compute-sanitizer memcheck and racecheck.
# Output goes to stdout and to $OUT (or /tmp) as text files.
#   native/tests/run_gpu_checks.sh            from anywhere in the repo
set -uo pipefail
native=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp}
build=$(mktemp -d /tmp/bertj-gpu-XXXX)
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
"$build/test_cuda_vs_cpu" > "$out/test_cuda_vs_cpu.txt" 2>&1 || rc=$?
grep -v PASS "$out/test_cuda_vs_cpu.txt"   # failures, skips and the summary
echo "test_cuda_vs_cpu exit $rc"
"$build/bench_cuda_ops" 2>&1 | tee "$out/bench_cuda_ops.txt"
# The dK/dV kernel's query tile at D = 64 (attention.cu, BJ_ATTN_D64_KV_QTILE): the default 64
# against 32, attention rows only.
if [ "${KV_VARIANT:-1}" = 1 ]; then
  v="$build/kq32"
  mkdir -p "$v"
  nvcc -O3 -lineinfo -std=c++17 -Xcompiler -fPIC -DBJ_WITH_CUDA $inc -DBJ_ATTN_D64_KV_QTILE=32 \
    -gencode arch=compute_90,code=sm_90 -c "$native/cuda/attention.cu" -o "$v/attention.o" &&
  nvcc -shared -o "$v/libbertj_cuda.so" "$v/attention.o" \
    $(ls "$build"/cuda_*.o | grep -v cuda_attention.o) -lcudart &&
  g++ -O2 -std=c++17 -DBJ_WITH_CUDA $inc -I"$cuda/include" "$native/tests/bench_cuda_ops.cpp" \
    -L"$v" -lbertj_cuda -L"$cuda/targets/x86_64-linux/lib" -L"$cuda/lib64" -lcudart \
    -Wl,-rpath,"$v" -Wl,--disable-new-dtags -o "$v/bench_cuda_ops" &&
  echo "== variant BJ_ATTN_D64_KV_QTILE=32 ==" &&
  LD_LIBRARY_PATH="$v:$LD_LIBRARY_PATH" "$v/bench_cuda_ops" 2>&1 | grep -E "attention|^\| op" |
    tee "$out/bench_cuda_ops_kq32.txt"
fi
if [ "${SANITIZE:-0}" = 1 ]; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool "$tool" --print-limit 20 "$build/test_cuda_vs_cpu" \
      > "$out/sanitizer_$tool.txt" 2>&1
    echo "compute-sanitizer $tool: exit $? ($(grep -c -E '^========= (Invalid|Race|Error)' "$out/sanitizer_$tool.txt") reports)"
    tail -3 "$out/sanitizer_$tool.txt"
  done
fi
exit $rc
