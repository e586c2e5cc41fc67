#!/usr/bin/env bash
# The course on a GPU, checked in one go; whoever has a GPU runs it and pastes the summary
# into the README ("GPU check"), with the date and the GPU.
#
#   bash benchmarks/gpu_check.sh                 # from the repository root, package installed
#   WHEELS=/path/to/wheels bash benchmarks/gpu_check.sh
#                                                # first install nbval, jupytext, ipykernel...
#                                                # from local wheel files (a machine offline)
#
# It runs, on CUDA:
#   1. the unit tests (the `device` fixture then adds the cuda cases);
#   2. every notebook under nbval strict (asserts and stored outputs must hold on a GPU too);
#   3. the training throughput benchmark in fp32, bf16 and fp16 autocast;
#   4. a short run of the `mnist` preset on small MNIST-format files written here (the GPU
#      machine may have no network), for its images per second; with several GPUs, the same
#      run again on all of them through torchrun (DistributedDataParallel).
# and prints one summary table at the end. Without a CUDA GPU it says so and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU is available on this machine; nothing was measured."
    exit 0
fi
if [ -n "${WHEELS:-}" ]; then
    python -m pip install -q --no-index --find-links "$WHEELS" nbval jupytext ipykernel nbconvert || true
fi
python -m pip install -q --no-deps -e . >/dev/null 2>&1 || true

gpu=$(python -c "import torch; print(torch.cuda.get_device_name(0))")
summary=()
record() { summary+=("$(printf '%-34s %s' "$1" "$2")"); }

# 1. unit tests (no nbval plugin needed for this part)
python -m pytest tests -q -p no:cacheprovider -o addopts="" 2>&1 | tee "$out/unit.log" | tail -3
record "unit tests" "$(tail -1 "$out/unit.log")"

# 2. every notebook under nbval strict
if python -c "import nbval, jupytext" 2>/dev/null; then
    python -m pytest notebooks -q -p no:cacheprovider 2>&1 | tee "$out/nbval.log" | tail -3
    record "notebooks under nbval" "$(tail -1 "$out/nbval.log")"
else
    record "notebooks under nbval" "skipped: nbval/jupytext not installed (set WHEELS=...)"
fi

# 3. training throughput, three precisions
for precision in fp32 bf16 fp16; do
    if python benchmarks/throughput.py --help 2>/dev/null | grep -q -- "--precision"; then
        line=$(python benchmarks/throughput.py --device cuda --precision "$precision" 2>&1 | tee "$out/throughput_$precision.log" | tail -1)
    elif [ "$precision" = fp32 ]; then
        line=$(python benchmarks/throughput.py --device cuda 2>&1 | tee "$out/throughput_$precision.log" | tail -1)
    elif [ "$precision" = bf16 ]; then
        line=$(python benchmarks/throughput.py --device cuda --bf16 2>&1 | tee "$out/throughput_$precision.log" | tail -1)
    else
        line="not supported by benchmarks/throughput.py"
    fi
    record "throughput $precision" "$line"
done

# 4. a short mnist preset run on MNIST-format files written here
data=$(mktemp -d)
python - "$data" <<'EOF'
import struct, sys
from pathlib import Path
import numpy as np
raw = Path(sys.argv[1]) / "MNIST" / "raw"
raw.mkdir(parents=True)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(2048, 28, 28), dtype=np.uint8)
labels = (np.arange(2048) % 10).astype(np.uint8)
for split in ("train", "t10k"):
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
        (raw / f"{split}-{kind}-ubyte").write_bytes(header + array.tobytes())
EOF
start=$(date +%s)
ddpm-course train --preset mnist --data-root "$data" --steps 200 --device cuda --out "$out/mnist_check" \
    --overwrite --no-progress > "$out/mnist.log" 2>&1
status=$?
# the CLI's last line: "trained 200 steps in ... min (N images/s), final loss ...; saved ..."
rate=$(grep -o '([0-9]* images/s)' "$out/mnist.log" | tail -1)
record "mnist preset, 200 steps" "exit $status in $(( $(date +%s) - start )) s ${rate:-} (fake MNIST-format files)"
ngpu=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$ngpu" -gt 1 ]; then  # the same run on every GPU through torchrun + DistributedDataParallel
    start=$(date +%s)
    torchrun --standalone --nproc_per_node "$ngpu" -m ddpm_course.cli train --preset mnist --data-root "$data" \
        --steps 200 --out "$out/mnist_ddp" --overwrite --no-progress > "$out/mnist_ddp.log" 2>&1
    status=$?
    rate=$(grep -o '([0-9]* images/s)' "$out/mnist_ddp.log" | tail -1)
    record "mnist preset, torchrun x$ngpu" "exit $status in $(( $(date +%s) - start )) s ${rate:-} per process"
fi

echo
echo "GPU check on $gpu, torch $(python -c 'import torch; print(torch.__version__)'), $(date -u +%Y-%m-%d)"
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
