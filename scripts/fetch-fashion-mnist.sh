#!/usr/bin/env bash
# Make Fashion-MNIST available for `make demo`: the Debian package puts the four IDX
# files in /usr/share/datasets/fashion-mnist/. Installs it when we can (root + apt-get);
# otherwise says how to get the data.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST: $dir"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Fashion-MNIST: installing the Debian package dataset-fashion-mnist"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
  exit 0
fi
cat >&2 <<MSG
Fashion-MNIST is not in $dir and this shell cannot install it. Either:
  sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist
or put the four IDX .gz files in a folder and pass it: revact compare --data-dir PATH
MSG
exit 1
