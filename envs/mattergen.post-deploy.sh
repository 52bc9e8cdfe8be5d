#!/usr/bin/env bash
# Run by `snakemake --sdm conda` inside the freshly created envs/mattergen.yaml environment, from the
# project root: installs MatterGen into it (the yaml cannot express MatterGen's --no-deps install).
set -euo pipefail
bash envs/build-mattergen-env.sh --into-active
