#!/usr/bin/env bash
# Use sdscm-bench from outside its repository, as an estimator library's CI would.
#
# Builds the sdscm-bench wheel and an adapter package's wheel, installs both (not editable; the core
# plus [generate], not [all]) into a fresh virtual environment, and from an empty directory, with no
# repository file on the path, runs
#   (a) the adapter on 2 released datasets per paper LM (skipped, saying why, without the data);
#   (b) a built-in adapter on the shipped family `confounder` generated with the tiny random LM.
# Each run writes its leaderboard where the README says: (a) the default leaderboard/leaderboard.md
# under the working directory, (b) the --leaderboard path. The script checks that both files of
# each run exist and name the estimator. sdscm-bench's CI (.ci/run) and examples/github-actions.yml
# run this script.
#
# Environment (all optional):
#   ADAPTER_PACKAGE    folder of the adapter package (default: examples/sdscm-bench-example-adapter)
#   ESTIMATOR          its --estimator name (default: example_ridge_tlearner)
#   BUILTIN_ESTIMATOR  built-in adapter of run (b) (default: ols_slearner)
#   PAPER_DATA         folder holding gpt2.parquet and llama-3-8b.parquet
#                      (default: ../shared/sdscm-paper-data beside the sdscm-bench checkout)
#   EXTRA_PIP_ARGS     more to install into the environment, e.g. "-e ." for your library's dev version
#   TORCH_REQUIREMENT  how torch goes in before the rest (default as setup.sh: torch==2.13.0 without
#                      a GPU); e.g. "torch==2.13.0 --index-url <a CPU wheel index>"
#   WORKDIR            wheels, environment and runs (default: a new temporary directory, removed at
#                      the end unless KEEP_WORKDIR=1)
#   PYTHON             interpreter for the environment (default: python3)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
ADAPTER_PACKAGE=$(cd "${ADAPTER_PACKAGE:-$REPO/examples/sdscm-bench-example-adapter}" && pwd)
ESTIMATOR=${ESTIMATOR:-example_ridge_tlearner}
BUILTIN_ESTIMATOR=${BUILTIN_ESTIMATOR:-ols_slearner}
PAPER_DATA=${PAPER_DATA:-$REPO/../shared/sdscm-paper-data}

if [ -n "${WORKDIR:-}" ]; then
  mkdir -p "$WORKDIR"
  WORK=$(cd "$WORKDIR" && pwd)
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/sdscm-outside-use.XXXXXX")
  [ "${KEEP_WORKDIR:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
fi
case "$WORK/" in
  "$REPO"/*) echo "outside-use: WORKDIR $WORK is inside the checkout; pick a folder outside it" >&2; exit 2 ;;
esac
echo "outside-use: working in $WORK"

# 1. Wheels. sdscm-bench is built from a copy of what git sees (tracked and untracked, not ignored),
#    so that build/ leftovers of a checkout never land in the wheel.
mkdir -p "$WORK/src" "$WORK/wheels"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$REPO" && git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf -) \
    | tar -xf - -C "$WORK/src"
else
  cp -a "$REPO/." "$WORK/src"
fi
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip
case "$ADAPTER_PACKAGE/" in  # a package inside this checkout is built from the copy too
  "$REPO"/*) ADAPTER_SOURCE="$WORK/src/${ADAPTER_PACKAGE#"$REPO"/}" ;;
  *) ADAPTER_SOURCE=$ADAPTER_PACKAGE ;;
esac
"$VPY" -m pip wheel -q --no-deps -w "$WORK/wheels" "$WORK/src" "$ADAPTER_SOURCE"
SDSCM_WHEEL=$(ls "$WORK"/wheels/sdscm_bench-*.whl)
ADAPTER_WHEELS=$(ls "$WORK"/wheels/*.whl | grep -v "/sdscm_bench-")

# 2. The environment: torch first (a bare `torch` requirement would pull a multi-GB CUDA build where
#    there is no GPU), then both wheels, sdscm-bench with [generate] for run (b).
if [ -n "${TORCH_REQUIREMENT:-}" ]; then
  # shellcheck disable=SC2086  # a requirement and pip options, split on purpose
  "$VPY" -m pip install -q $TORCH_REQUIREMENT
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  "$VPY" -m pip install -q torch
else
  "$VPY" -m pip install -q torch==2.13.0
fi
# shellcheck disable=SC2086
"$VPY" -m pip install -q "$SDSCM_WHEEL[generate]" $ADAPTER_WHEELS ${EXTRA_PIP_ARGS:-}
if "$VPY" -m pip show -q sdscm-bench 2>/dev/null | grep -qi "^Editable project location"; then
  echo "outside-use: sdscm-bench is installed editable" >&2
  exit 1
fi

# 3. The runs, from empty folders outside the checkout; nothing of the repository is importable.
export HF_HUB_OFFLINE=1
export SDSCM_BENCH_CACHE=${SDSCM_BENCH_CACHE:-$WORK/cache}
unset PYTHONPATH
check() {  # check LEADERBOARD.md ESTIMATOR: both result files exist and the table names the estimator
  local md=$1 name=$2
  [ -s "$md" ] || { echo "outside-use: $md was not written" >&2; exit 1; }
  [ -s "$(dirname "$md")/results.parquet" ] || { echo "outside-use: no results.parquet beside $md" >&2; exit 1; }
  grep -q "$name" "$md" || { echo "outside-use: $md does not name $name" >&2; exit 1; }
  echo "outside-use: $name -> $md"
}

mkdir -p "$WORK/run-released" "$WORK/run-generated"
if [ -f "$PAPER_DATA/gpt2.parquet" ] && [ -f "$PAPER_DATA/llama-3-8b.parquet" ]; then
  PAPER_DATA=$(cd "$PAPER_DATA" && pwd)
  (cd "$WORK/run-released" && "$WORK/venv/bin/pytest" --estimator="$ESTIMATOR" \
    --lm=paper-gpt2,paper-llama-3-8b --n-datasets=2 --paper-data="$PAPER_DATA")
  check "$WORK/run-released/leaderboard/leaderboard.md" "$ESTIMATOR"
else
  echo "outside-use: skipped run (a), $ESTIMATOR on released data: no gpt2.parquet and llama-3-8b.parquet in $PAPER_DATA (set PAPER_DATA)"
fi

(cd "$WORK/run-generated" && "$WORK/venv/bin/pytest" --estimator="$BUILTIN_ESTIMATOR" \
  --lm=tiny-random --family=confounder --n-datasets=2 --units=100 \
  --leaderboard="$WORK/run-generated/out/leaderboard.md")
check "$WORK/run-generated/out/leaderboard.md" "$BUILTIN_ESTIMATOR"
echo "outside-use: passed"
