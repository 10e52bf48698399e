#!/usr/bin/env bash
# Create or reuse the project environment; called by `make env` (and so by `make test` / `make demo`).
#
# The environment is keyed by a hash of pyproject.toml and the torch pins. It is built once per
# machine in $VENV_CACHE/venv-<hash> and .venv is a symlink to it, so a fresh clone on a machine
# that already built the same environment (CI after a session, a second checkout) is ready in
# seconds, and a changed pyproject.toml builds a new one. The project itself is an editable
# install; a checkout that reuses a cached environment re-points it at itself (a few seconds).
# A build that dies half-way leaves no stamp and is rebuilt from scratch on the next call.
set -euo pipefail

PYTHON=${PYTHON:-python3}
VENV_CACHE=${VENV_CACHE:-$HOME/.cache/xvlm}
# Pinned together in one pip command: both lie on disk on our machines (pip's local wheel store),
# and PyPI's torchvision does not import beside the CPU-only torch 2.13 file.
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"
EXTRAS="dev,dask,prepare"

hash=$( (cat pyproject.toml; echo "$TORCH_PINS $EXTRAS") | sha256sum | cut -c1-16)
stamp_name=".xvlm-env-$hash"

if [ -f ".venv/$stamp_name" ]; then
  target=".venv"
else
  target="$VENV_CACHE/venv-$hash"
  if [ ! -f "$target/$stamp_name" ]; then
    echo "env: building $target (first time on this machine: about 2.5 min, 6.6 GB)"
    start=$(date +%s)
    rm -rf "$target"
    mkdir -p "$VENV_CACHE"
    "$PYTHON" -m venv "$target"
    # (the filter drops pip's notes about optional local wheel folders that this machine lacks)
    "$target/bin/pip" install --quiet --disable-pip-version-check $TORCH_PINS -e ".[$EXTRAS]" setuptools wheel \
      2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    # img2dataset requires the Python 3.6 backport `dataclasses`, whose dataclasses.py in site-packages
    # shadows the standard library's in Prefect's server process (pydantic then fails on
    # `dataclass(slots=True)`): Python 3.11 has its own, so the backport goes.
    "$target/bin/pip" uninstall --quiet --yes dataclasses 2>/dev/null || true
    touch "$target/$stamp_name"
    echo "env: built in $(( $(date +%s) - start )) s, $(du -sh "$target" | cut -f1)"
  else
    echo "env: reusing $target"
  fi
  if [ -e .venv ] && [ ! -L .venv ]; then
    echo "env: .venv exists but is not the environment for this pyproject.toml; moving it to .venv.stale" >&2
    rm -rf .venv.stale && mv .venv .venv.stale
  fi
  ln -sfn "$target" .venv
fi

# Point the editable install at this checkout if another checkout built the environment.
here=$(pwd -P)
where=$(cd / && "$here/.venv/bin/python" -c 'import os, xvlm; print(os.path.dirname(os.path.dirname(os.path.realpath(xvlm.__file__))))' 2>/dev/null || true)
if [ "$where" != "$here" ]; then
  echo "env: pointing the editable install at $here"
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . \
    2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
fi
