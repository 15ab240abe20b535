#!/usr/bin/env bash
# Builds the native libraries and their JavaCPP JNI glue into a Maven module's classes folder.
# Called by java-api/pom.xml in the process-classes phase:
#   build.sh <target-dir> <classes-dir> <javacpp.jar> <cuda: auto|on|off>
# Result: <classes>/org/bertj/nativ/linux-x86_64/{libbertj_cpu.so, libjniBertjCpu.so,
#         and, when CUDA is built, libbertj_cuda.so, libjniBertjCuda.so}.
set -euo pipefail
target=$1; classes=$2; javacpp_jar=$3; cuda=${4:-auto}
here=$(cd "$(dirname "$0")" && pwd)
build="$target/native-build"
platform_dir="$classes/org/bertj/nativ/linux-x86_64"
jobs=$(nproc 2>/dev/null || echo 2)

cmake_cuda=AUTO
case "${cuda,,}" in on|true) cmake_cuda=ON ;; off|false) cmake_cuda=OFF ;; esac

[ "$cmake_cuda" = OFF ] && rm -f "$build/libbertj_cuda.so"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBERTJ_CUDA="$cmake_cuda" >"$target/native-cmake.log" 2>&1 \
  || { cat "$target/native-cmake.log"; exit 1; }
cmake --build "$build" -j "$jobs" 2>&1 | grep -v -E '^\[ *[0-9]+%\]' || true
test "${PIPESTATUS[0]}" -eq 0 || { echo "native build failed" >&2; exit 1; }
test -f "$build/libbertj_cpu.so" || { echo "native build produced no libbertj_cpu.so" >&2; exit 1; }

mkdir -p "$platform_dir"
cp -f "$build/libbertj_cpu.so" "$platform_dir/"
classes_list=(org.bertj.nativ.LibC org.bertj.nativ.BertjCpu)
if [ -f "$build/libbertj_cuda.so" ]; then
  cp -f "$build/libbertj_cuda.so" "$platform_dir/"
  classes_list+=(org.bertj.nativ.BertjCuda)
else
  rm -f "$platform_dir/libbertj_cuda.so" "$platform_dir/libjniBertjCuda.so"
fi

# JavaCPP's Builder: generates jni<Class>.cpp and compiles lib jni<Class>.so (rpath $ORIGIN).
# Skipped when the JNI library is newer than its class file and the native library.
for cls in "${classes_list[@]}"; do
  simple=${cls##*.}
  jni="$platform_dir/libjni$simple.so"
  classfile="$classes/${cls//.//}.class"
  case "$simple" in BertjCpu) lib="$platform_dir/libbertj_cpu.so" ;; BertjCuda) lib="$platform_dir/libbertj_cuda.so" ;; *) lib="$classfile" ;; esac
  if [ -f "$jni" ] && [ "$jni" -nt "$classfile" ] && [ "$jni" -nt "$lib" ] && [ "$jni" -nt "$here/include/bertj.h" ]; then
    continue
  fi
  java -cp "$javacpp_jar:$classes" org.bytedeco.javacpp.tools.Builder \
    -cp "$classes" -d "$platform_dir" \
    -Dplatform.includepath="$here/include" -Dplatform.linkpath="$platform_dir" \
    "$cls" > "$target/javacpp-$simple.log" 2>&1 || { cat "$target/javacpp-$simple.log"; exit 1; }
  rm -f "$platform_dir"/jni*.cpp "$platform_dir"/*.o
done
echo "bertj native: $(cd "$platform_dir" && ls *.so | tr '\n' ' ')"
