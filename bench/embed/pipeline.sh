#!/usr/bin/env bash
# bench/embed/pipeline.sh: whole pipeline, 12 MP JPEG files -> stored vectors, photos/s.
# shoebox index with a model (which also hashes, reads EXIF and writes two thumbnails per
# photo) against two baselines on the same files and the same random ViT-B/32 weights, in the
# same run: PIL (draft) + PyTorch doing only the decode, preprocessing and image tower (the
# ratio the goal is stated in), and PIL + PyTorch doing the same work as shoebox (what
# bench/index/pil_baseline.py does per photo, the model input from that same decode, the
# tower: pipeline_torch.py with an OUTDIR).
# Usage: bench/embed/pipeline.sh [BUILD] [N]   (photos from bench/index/gen_photos.py)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
build="$(cd "${1:-$root/build}" && pwd)"
n="${2:-64}"
work="${SHOEBOX_BENCH_DIR:-/tmp/shoebox-bench-pipeline}"
model="${SHOEBOX_BENCH_MODEL:-/tmp/sbemb/b32}"
mkdir -p "$work"
[ -f "$model/model.safetensors" ] || /usr/bin/python3 "$here/gen_models.py" "$(dirname "$model")" >/dev/null
/usr/bin/python3 "$root/bench/index/gen_photos.py" "$work/photos" "$n" >/dev/null
cat "$work/photos"/* >/dev/null
ob=/usr/lib/x86_64-linux-gnu/openblas-openmp
# CPU ms per photo besides photos/s: a loaded (shared) box blurs it far less than the wall
# clock (shoebox's includes loading the model, torch's does not; torch's OpenMP threads count
# their spinning)
ms() { echo "1000 * $1 / $n" | bc -l; }
for prec in bf16 fp32; do
    rm -rf "$work/db"
    t0=$(date +%s.%N)
    /usr/bin/time -o "$work/sb.time" -f '%U %S' "$build/shoebox" --db "$work/db/catalog.db" --model "$model" --precision "$prec" index "$work/photos" 2>/dev/null
    t1=$(date +%s.%N)
    sb=$(echo "$n / ($t1 - $t0)" | bc -l)
    read -r sb_user sb_sys < <(tail -1 "$work/sb.time")
    sb_cpu=$(echo "$sb_user + $sb_sys" | bc -l)
    read -r _ _ py py_cpu < <(LD_LIBRARY_PATH=$([ -d $ob ] && echo $ob) /usr/bin/python3 "$here/pipeline_torch.py" "$model" "$work/photos" "$prec")
    rm -rf "$work/pilthumbs"
    read -r _ _ same same_cpu < <(LD_LIBRARY_PATH=$([ -d $ob ] && echo $ob) /usr/bin/python3 "$here/pipeline_torch.py" "$model" "$work/photos" "$prec" "$work/pilthumbs")
    printf '%s: shoebox index %.2f photos/s, PIL+torch %.2f photos/s, ratio %.1fx\n' "$prec" "$sb" "$py" "$(echo "$sb / $py" | bc -l)"
    printf '%s: same work (hash, EXIF, 2 thumbnails, vectors): PIL+torch %.2f photos/s, ratio %.1fx\n' "$prec" "$same" "$(echo "$sb / $same" | bc -l)"
    printf '%s: CPU ms per photo: shoebox %.1f, PIL+torch %.1f (%.1fx), same work %.1f (%.1fx)\n' "$prec" "$(ms "$sb_cpu")" "$(ms "$py_cpu")" "$(echo "$py_cpu / $sb_cpu" | bc -l)" "$(ms "$same_cpu")" "$(echo "$same_cpu / $sb_cpu" | bc -l)"
done
