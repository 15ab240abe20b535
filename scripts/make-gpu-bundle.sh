#!/usr/bin/env bash
# Builds bundle/ (git-ignored) for the GPU machine, which has no Java and no network:
#   bundle/jre.tgz          a jlink JRE (unpacked there)
#   bundle/lib/*.jar        bertj (with libbertj_cuda.so inside, built here by nvcc for sm_90),
#                           its runtime jars minus the big ones the GPU check does not use
#                           (DJL tokenizers, langchain4j MiniLM, ONNX Runtime), test classes, the
#                           JUnit console launcher
#   bundle/native/          the native CUDA test and benchmark programs and their libraries
#   bundle/shared/golden/   the tiny-bert golden files
# Then: the device tool runs scripts/gpu-check.sh with carry ["bundle"]. Must stay < 64 MiB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
b="$root/bundle"
rm -rf "$b"
mkdir -p "$b/lib" "$b/native" "$b/shared"

./mvnw -B -q -DskipTests -Dbertj.cuda=on -pl java-api package
test -f java-api/target/classes/org/bertj/nativ/linux-x86_64/libbertj_cuda.so \
  || { echo "no libbertj_cuda.so: is nvcc installed?" >&2; exit 1; }

# Runtime jars, minus what the GPU check does not load.
tr ':' '\n' < java-api/target/classpath.txt \
  | grep -v -E 'tokenizers|langchain4j|onnxruntime|/ai/djl/|/net/java/dev/jna/|/commons-|/gson/|/protobuf-' \
  | while read -r j; do [ -n "$j" ] && cp "$j" "$b/lib/"; done
cp java-api/target/bertj-*.jar "$b/lib/"
# OpenBLAS: bertj binds openblas_nolapack only; the LAPACK JNI libraries and headers are not used.
ob=$(ls "$b"/lib/openblas-*-linux-x86_64.jar)
zip -q -d "$ob" 'org/bytedeco/openblas/linux-x86_64/libjniopenblas.so' \
  'org/bytedeco/openblas/linux-x86_64/libjniopenblas_full.so' 'org/bytedeco/openblas/linux-x86_64/include/*' >/dev/null
(cd java-api/target/test-classes && jar cf "$b/lib/bertj-tests.jar" .)
junit=$(find ~/.m2/repository/org/junit/platform/junit-platform-console-standalone -name '*.jar' | sort | tail -1)
[ -n "$junit" ] || { ./mvnw -B -q dependency:get -Dartifact=org.junit.platform:junit-platform-console-standalone:1.14.1; \
  junit=$(find ~/.m2/repository/org/junit/platform/junit-platform-console-standalone -name '*.jar' | sort | tail -1); }
cp "$junit" "$b/lib/junit-console.jar"

# Native programs (built by the Maven native step with ctest targets); their libraries are taken
# out of the bertj jar on the GPU machine (scripts/gpu-check.sh), not carried twice.
nb=java-api/target/native-build
for f in "$nb"/tests/test_cuda_vs_cpu "$nb"/tests/bench_cuda_ops "$nb"/tests/bench_gemm "$nb"/tests/test_cpu_smoke; do
  [ -f "$f" ] && cp "$f" "$b/native/"
done
gomp=$(ldconfig -p | awk '/libgomp.so.1 /{print $NF; exit}')
[ -n "$gomp" ] && cp "$gomp" "$b/native/"

# A fine-tuned tiny model and bertj's predictions, for scripts/check_hf_load.py (transformers).
cp_test="java-api/target/test-classes:java-api/target/classes:$(cat java-api/target/classpath.txt)"
java -Dbertj.golden.dir="$root/../shared/golden" -cp "$cp_test" org.bertj.train.HfFixture "$b/hf/base" >/dev/null
./bertj finetune --model "$b/hf/base" --train examples/sentiment/train.tsv --test examples/sentiment/test.tsv \
  --epochs 1 --device cpu --seed 1 --output "$b/hf/single" >/dev/null 2>"$b/hf/finetune.log"
./bertj predict --model "$b/hf/single" --data examples/sentiment/test.tsv --device cpu > "$b/hf/single/predictions.jsonl"
rm -rf "$b/hf/base" "$b/hf/single/checkpoint" "$b/hf/single/training.png"

mkdir -p "$b/shared/golden"
cp -r ../shared/golden/tiny-bert "$b/shared/golden/"

# The JRE: modules the jars need plus JMH's.
jdk=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
mods=java.base,java.logging,jdk.unsupported,java.management,java.xml
rm -rf /tmp/bertj-jre
"$jdk/bin/jlink" --add-modules "$mods" --strip-debug --no-header-files --no-man-pages \
  --compress=2 --output /tmp/bertj-jre
strip --strip-unneeded /tmp/bertj-jre/lib/server/libjvm.so 2>/dev/null || true
tar cf - -C /tmp bertj-jre | gzip -9 > "$b/jre.tgz"
du -sh "$b" "$b"/* | sort -h
total=$(du -sm "$b" | cut -f1)
[ "$total" -le 62 ] || { echo "bundle is ${total} MiB: over the 64 MiB the device tool carries" >&2; exit 1; }
