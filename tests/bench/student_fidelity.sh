#!/usr/bin/env bash
# How closely a guidance-distilled student reproduces its teacher's CFG images: for each
# prompt, seed and guidance scale, the teacher's image (two UNet rows a step) and the
# student's (one row, the scale as an input) from the same seed, and the PSNR between the
# two (tests/bench/png_psnr.py); prints the mean PSNR per scale. Not part of ctest (it
# measures, it does not check).
#
#   tests/bench/student_fidelity.sh [--bin build/bin] [--teacher models/default]
#                                   [--student models/student] [--scales "1 3 7.5 10"]
#                                   [--seeds 2] [--steps 25]
#
# A higher PSNR means the student follows the teacher at that scale more closely; at
# s = 1 the teacher is its conditional model alone, the end of the range a student learns
# last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=build/bin teacher=models/default student=models/student scales="1 3 7.5 10" seeds=2 steps=25
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) bin=$2; shift 2 ;;
    --teacher) teacher=$2; shift 2 ;;
    --student) student=$2; shift 2 ;;
    --scales) scales=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
prompts=("a red circle" "a large blue square on the left" "a small yellow star at the top"
         "a green triangle on a navy background" "a large purple circle in the center"
         "an orange square on the right" "a white star on a black background"
         "a small black triangle at the bottom" "a blue circle on a beige background"
         "a large red star on the right" "a yellow square" "a green circle on the left")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "student $student against teacher $teacher: ${#prompts[@]} prompts x $seeds seeds, $steps steps"
printf '%8s | %12s | %s\n' scale "mean PSNR dB" "min dB"
for s in $scales; do
    sum=0 n=0 min=1000
    for i in "${!prompts[@]}"; do
        for ((seed = 1; seed <= seeds; seed++)); do
            for m in teacher student; do
                dir=$teacher; [ $m = student ] && dir=$student
                "$bin/cfgserve-generate" --model "$dir" --prompt "${prompts[$i]}" \
                    --guidance-scale "$s" --steps "$steps" --seed "$seed" --threads 1 \
                    -o "$tmp/$m.png" > /dev/null 2>&1
            done
            p=$(python3 "$here/png_psnr.py" "$tmp/teacher.png" "$tmp/student.png")
            [ "$p" = inf ] && p=99
            sum=$(echo "$sum + $p" | bc -l) n=$((n + 1))
            min=$(echo "if ($p < $min) $p else $min" | bc -l)
        done
    done
    printf '%8s | %12.2f | %.2f\n' "$s" "$(echo "$sum / $n" | bc -l)" "$min"
done
