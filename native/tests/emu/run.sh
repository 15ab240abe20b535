#!/usr/bin/env bash
# Builds native/cuda/*.cu as plain C++ against the CPU emulation in this folder (cuda_runtime.h),
# links them with the CPU kernels and runs test_cuda_vs_cpu: the CUDA kernels' index math,
# barriers and shuffles checked on a machine without a GPU (slowly: one fiber per GPU thread).
#   native/tests/emu/run.sh [build-dir]    SAN=1 adds ASan + UBSan; EXTRA="-D..." adds flags;
#                                          BJ_EMU_SCHED=reverse|random changes the thread order
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
native=$(cd "$here/../.." && pwd)
out=${1:-/tmp/bertj-emu-build}
mkdir -p "$out"
san=""
if [ "${SAN:-0}" = 1 ]; then san="-fsanitize=address,undefined -fno-omit-frame-pointer"; fi
common="-std=c++17 -O1 -g -fno-strict-aliasing -DBJ_WITH_CUDA -I$native/include $san ${EXTRA:-}"
emu="$common -DBJ_CUDA_EMU -I$here -Wno-unknown-pragmas"
jobs=()
for f in "$native"/cuda/*.cu; do
  jobs+=("g++ $emu -x c++ -c $f -o $out/cuda_$(basename "$f" .cu).o")
done
for f in "$native"/cpu/*.cpp; do
  jobs+=("g++ $common -fopenmp -march=x86-64-v2 -c $f -o $out/cpu_$(basename "$f" .cpp).o")
done
jobs+=("g++ $emu -c $native/tests/test_cuda_vs_cpu.cpp -o $out/test_cuda_vs_cpu.o")
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} sh -c '{}'
g++ $san -fopenmp "$out"/*.o -o "$out/test_cuda_vs_cpu_emu"
"$out/test_cuda_vs_cpu_emu"
