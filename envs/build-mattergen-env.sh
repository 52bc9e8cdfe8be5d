#!/usr/bin/env bash
# Builds a CPU MatterGen environment (a venv) for the `mattergen` generator backend and its tests.
#   bash envs/build-mattergen-env.sh [ENV_DIR]      (default: .venv-mattergen, git-ignored)
#   bash envs/build-mattergen-env.sh --into-active  (the active conda env, which brings its own torch,
#                                                   torch_scatter, torch_sparse: envs/mattergen.post-deploy.sh)
# MatterGen 1.0.3 pins a CUDA 11.8 torch that PyPI does not have, so the recipe installs it without
# its dependencies, then its own requirements minus the torch family and dev tools, with the pins in
# ../shared/notes/mattergen.md. Re-running is a no-op (a stamp holds this script's hash).
# Variables: PYTHON (interpreter to build from, 3.10/3.11), MATTERGEN_TORCH (torch requirement,
# e.g. a CUDA build on GPU nodes), MATTERGEN_WHEELS (folder with torch_scatter/torch_sparse
# wheels; default ../shared/wheels; without it they compile from source, ~45 min on 2 cores).
set -euo pipefail
script=$(realpath "$0")
cd "$(dirname "${script}")/.."

into_active=false
if [ "${1:-}" = "--into-active" ]; then
    into_active=true
fi
env_dir=${1:-.venv-mattergen}
python=${PYTHON:-python3}
torch_req=${MATTERGEN_TORCH:-torch==2.13.0}
wheels=${MATTERGEN_WHEELS:-../shared/wheels}
mattergen_req="mattergen==1.0.3"
# setuptools<81: Lightning 2.0.6 imports pkg_resources. ase 3.24: mattersim. SMACT<3: mattergen's
# composition check breaks on SMACT 4. emmet-core 0.84.x: newer ones need numpy>=2.
pins=("setuptools<81" "emmet-core>=0.84.3,<0.85" "ase==3.24.0" "SMACT<3")

stamp="${env_dir}/.crystal-campaign-built"
recipe_hash=$( (cat "${script}"; echo "${torch_req} ${python}") | sha256sum | cut -d' ' -f1)
if ! "${into_active}" && [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${recipe_hash}" ]; then
    echo "MatterGen environment ${env_dir} is up to date"
    exit 0
fi

start=$SECONDS
if "${into_active}"; then
    env_python=$(command -v python)
    torch_req="torch==$("${env_python}" -c 'import torch; print(torch.__version__.split("+")[0])')"
else
    rm -rf "${env_dir}"
    "${python}" -m venv "${env_dir}"
    env_python="${env_dir}/bin/python"
fi
pip=("${env_python}" -m pip install --quiet)

"${pip[@]}" "${torch_req}"
"${pip[@]}" --no-deps "${mattergen_req}"

# MatterGen's declared requirements without the torch family (torch_geometric stays) and without
# the development and notebook tools it lists, which no MatterGen module imports (they take most
# of the build time).
requirements=$(mktemp)
"${env_python}" - "${requirements}" <<'PY'
import re
import sys
from importlib.metadata import requires

torch_family = {"torch", "torchvision", "torchaudio", "torch-scatter", "torch-sparse", "torch-cluster"}
tools = {"jupyterlab", "notebook", "pylint", "autopep8", "pytest", "wandb", "seaborn"}
skip = torch_family | tools
keep = []
for line in requires("mattergen"):
    name = re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower().replace("_", "-")
    if name not in skip:
        keep.append(line)
with open(sys.argv[1], "w") as out:
    out.write("\n".join(keep) + "\n")
PY
"${pip[@]}" -r "${requirements}" "${torch_req}" "${pins[@]}"
# A torchvision pulled in transitively does not match this torch and breaks Lightning's import.
"${env_python}" -m pip uninstall --quiet -y torchvision torchaudio 2>/dev/null || true

# torch_scatter/torch_sparse are source-only on PyPI and their build imports torch.
extension_reqs=("torch-scatter==2.1.2" "torch-sparse==0.6.18")
if "${env_python}" -c "import torch_scatter, torch_sparse" 2>/dev/null; then
    echo "torch_scatter and torch_sparse already installed"
elif [ -d "${wheels}" ]; then
    "${pip[@]}" --find-links "${wheels}" --no-build-isolation "${extension_reqs[@]}"
else
    echo "no ${wheels}: compiling torch_scatter and torch_sparse from source (slow)"
    "${pip[@]}" --no-build-isolation "${extension_reqs[@]}"
fi

rm -f "${requirements}"
"${env_python}" -c "import torch_scatter, torch_sparse, mattergen.generator" >/dev/null
if ! "${into_active}"; then
    echo "${recipe_hash}" >"${stamp}"
fi
echo "installed MatterGen into ${env_python} in $((SECONDS - start)) s"
