#!/usr/bin/env bash
# Installs the Debian packages smtrain needs: OpenBLAS (fast kernels),
# bubblewrap (sandbox for agent code) and python3 (agent code, adapter tests).
# With BENCH=1 it also installs python3-torch for the PyTorch peer.
set -euo pipefail
pkgs=(libopenblas-dev bubblewrap python3 python3-numpy)
[ "${BENCH:-0}" = 1 ] && pkgs+=(python3-torch)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
