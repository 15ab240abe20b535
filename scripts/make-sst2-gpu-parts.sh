#!/usr/bin/env bash
# Prepares ft/ (git-ignored) so that the GPU machine can fine-tune MiniLM on SST-2 although one
# device call carries at most 64 MiB: the fp32 checkpoint (90 MB) alone does not fit. Three calls
# on the same warm machine (each carry stays there, ignored paths are kept between calls):
#   call 1: carry ["bundle"]  (scripts/make-gpu-bundle.sh: JRE, bertj jars; runs gpu-check.sh)
#   call 2: carry ["ft/a"]    DJL tokenizer jars (linux-x86_64 native only), SST-2 (gzip),
#                             config.json, tokenizer.json, the first part of model.safetensors
#   call 3: carry ["ft/b"]    the rest of model.safetensors; runs scripts/sst2-gpu.sh
# ft/a/model.sha256 lets sst2-gpu.sh check the reassembled checkpoint.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=${MODEL:-weights/all-MiniLM-L6-v2}
[ -f "$model/model.safetensors" ] || { echo "no $model/model.safetensors: run ./bertj embed once (converts MiniLM)" >&2; exit 1; }
rm -rf ft
mkdir -p ft/a/lib ft/a/data ft/a/model ft/b
tr ':' '\n' < java-api/target/classpath.txt \
  | grep -E '/ai/djl/|/net/java/dev/jna/|/commons-|/gson/' \
  | while read -r j; do cp "$j" ft/a/lib/; done
# DJL's tokenizer jar carries natives for 4 platforms; the GPU machine needs linux-x86_64 only.
tj=$(ls ft/a/lib/tokenizers-*.jar)
zip -q -d "$tj" 'native/lib/win-*' 'native/lib/osx-*' 'native/lib/linux-aarch64/*' >/dev/null
for s in train dev test; do gzip -9 -c "../shared/data/sst2/$s.tsv" > "ft/a/data/$s.tsv.gz"; done
cp "$model/config.json" "$model/tokenizer.json" ft/a/model/
(cd "$model" && sha256sum model.safetensors) > ft/a/model.sha256
head -c 44000000 "$model/model.safetensors" > ft/a/model.part1
tail -c +44000001 "$model/model.safetensors" > ft/b/model.part2
du -sh ft/a ft/b
for d in ft/a ft/b; do
  [ "$(du -sm "$d" | cut -f1)" -le 62 ] || { echo "$d is over 62 MiB" >&2; exit 1; }
done
