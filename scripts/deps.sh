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
# The official OpenAI node client, for smtrain serve's end-to-end test (the
# test skips without it).
if command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ ! -f "$(npm root -g)/openai/package.json" ]; then
  npm install -g --no-audit --no-fund openai@6.49.0 >/dev/null 2>&1 || echo "deps: npm openai not installed (smtrain serve end-to-end test will skip)" >&2
fi
# llama.cpp as node-llama-cpp (its Linux x64 build ships inside the package),
# for the GGUF export round-trip test and the llama.cpp decode benchmark
# (both skip without it). Pinned exactly.
if command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ ! -f "$(npm root -g)/node-llama-cpp/package.json" ]; then
  npm install -g -E --no-audit --no-fund node-llama-cpp@3.21.1 >/dev/null 2>&1 || echo "deps: npm node-llama-cpp not installed (GGUF round-trip test and llama.cpp bench will skip)" >&2
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
