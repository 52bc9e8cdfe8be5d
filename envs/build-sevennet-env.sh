#!/usr/bin/env bash
# Builds a CPU SevenNet environment (a venv) for the `sevennet` relax backend and stability ensemble
# member, and its tests: SevenNet needs e3nn>=0.5, which mace-torch's pin keeps out of the main one.
#   bash envs/build-sevennet-env.sh [ENV_DIR]      (default: .venv-sevennet, git-ignored)
# SevenNet-0's weights ship inside the sevenn wheel, so the environment works offline. Re-running
# is a no-op (a stamp holds this script's hash). Variables: PYTHON (interpreter to build from),
# SEVENNET_TORCH (torch requirement, e.g. a CUDA build on GPU nodes).
set -euo pipefail
script=$(realpath "$0")
cd "$(dirname "${script}")/.."

env_dir=${1:-.venv-sevennet}
python=${PYTHON:-python3}
torch_req=${SEVENNET_TORCH:-torch==2.13.0}
sevenn_req="sevenn==0.13.0"

stamp="${env_dir}/.crystal-campaign-built"
recipe_hash=$( (cat "${script}"; echo "${torch_req} ${python}") | sha256sum | cut -d' ' -f1)
if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${recipe_hash}" ]; then
    echo "SevenNet environment ${env_dir} is up to date"
    exit 0
fi

start=$SECONDS
rm -rf "${env_dir}"
"${python}" -m venv "${env_dir}"
env_python="${env_dir}/bin/python"
# torch first, so that sevenn's unpinned torch requirement takes it rather than a CUDA build
"${env_python}" -m pip install --quiet "${torch_req}"
"${env_python}" -m pip install --quiet "${sevenn_req}" "${torch_req}"
"${env_python}" -c "from sevenn.util import pretrained_name_to_path; import os; assert os.path.isfile(pretrained_name_to_path('7net-0'))"
echo "${recipe_hash}" >"${stamp}"
echo "installed SevenNet into ${env_python} in $((SECONDS - start)) s"
