#!/usr/bin/env bash
# On the GPU machine, after the three calls of scripts/make-sst2-gpu-parts.sh: reassembles the
# MiniLM checkpoint, then runs the SST-2 recipe of the fine-tuning issue with --device cuda, once
# per precision in $PRECISIONS (default "fp32 bf16"). Small outputs (result JSON, metrics, plot,
# log) go to $OUT/sst2-<precision><$TAG>/; the fine-tuned weights stay in /tmp. JAVA_PROPS: JVM
# options for the runs (e.g. -Dbertj.cublaslt=true).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/bertj-out}
mkdir -p "$OUT"
B="$root/bundle"
A="$root/ft/a"
M=/tmp/bertj-minilm
D=/tmp/bertj-sst2
mkdir -p "$M" "$D"
cat "$A/model.part1" "$root/ft/b/model.part2" > "$M/model.safetensors"
cp "$A/model/config.json" "$A/model/tokenizer.json" "$M/"
(cd "$M" && sha256sum -c "$A/model.sha256") || { echo "checkpoint reassembly failed" >&2; exit 1; }
for s in train dev test; do gunzip -c "$A/data/$s.tsv.gz" > "$D/$s.tsv"; done
[ -x /tmp/bertj-jre/bin/java ] || tar xzf "$B/jre.tgz" -C /tmp
JAVA=/tmp/bertj-jre/bin/java
export LD_LIBRARY_PATH="/usr/local/cuda-13.0/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"
CP=$(ls "$B"/lib/*.jar "$A"/lib/*.jar | grep -v -E 'junit-console|bertj-tests' | tr '\n' ':')
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
for p in ${PRECISIONS:-fp32 bf16}; do
  o="$OUT/sst2-$p${TAG:-}"
  mkdir -p "$o"
  echo "== finetune --device cuda --precision $p"
  t0=$(date +%s%N)
  timeout ${FT_TIMEOUT:-240} "$JAVA" -Xmx16g -Dorg.bytedeco.javacpp.logger.debug=false ${JAVA_PROPS:-} -cp "$CP" \
    org.bertj.cli.Main finetune --model "$M" --train "$D/train.tsv" --eval "$D/dev.tsv" \
    --test "$D/test.tsv" --epochs 1 --batch-size 32 --lr 5e-5 --seed 42 --device ${DEVICE:-cuda} \
    --precision "$p" ${FT_EXTRA:-} --output "/tmp/bertj-run-$p" > "$o/result.json" 2> "$o/log.txt"
  echo "rc=$? wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))" | tee -a "$o/log.txt"
  cp /tmp/bertj-run-$p/*.jsonl /tmp/bertj-run-$p/*.png "$o/" 2>/dev/null
  grep -v '^\s*$' "$o/log.txt" | tr '\r' '\n' | grep -v "train .*%" | tail -12
  cat "$o/result.json"
done
