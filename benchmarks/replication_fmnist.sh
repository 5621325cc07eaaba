#!/usr/bin/env bash
# The long replication behind the demo's verdicts (issue 16): the compact MobileNetV2 on all
# 55,000 Fashion-MNIST training images, 5 epochs, 3 seeds, ten activation settings, precise
# BatchNorm, Holm-adjusted verdicts. Hours on 2 cores. Re-running this script resumes: the
# finished runs under benchmarks/results/replication_fmnist/runs (their metrics.json are
# committed) are reused, a run cut off resumes from its checkpoint where that is still here.
#   usage: benchmarks/replication_fmnist.sh        (after `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
# A frozen copy of the package as committed (HEAD), with the native kernels built here:
# editing the tree while this runs (for hours) must not change the code later runs start with.
snap="$(mktemp -d)"
git archive HEAD src | tar -x -C "$snap"
cp src/revact/_C*.so src/revact/_native_build.json "$snap/src/revact/" 2>/dev/null || true
echo "replication: code from commit $(git rev-parse --short HEAD)"
export PYTHONPATH="$snap/src"
exec .venv/bin/revact compare \
  --acts relu,silu,gelu,acon_c,acon_c:init=swish,meta_acon,meta_acon:init=swish,dyrelu_b,dyrelu_c,dyrelu_c:relu_init=True \
  --seeds 3 --full --epochs 5 --precise-bn 50 --jobs 2 \
  --out benchmarks/results/replication_fmnist
