"""Lake -> samples -> webdataset shards (``docs/shards.md``).

Entry points (no Prefect here; ``flows/shards.py`` maps :func:`write_shard` over shard ids):

- ``load_recipe(name_or_path) -> Recipe``; ``recipe_hash(recipe)``
- ``plan_build(lake_root, raw_root, out_root, recipe, workers=4) -> (build_dir, plan)``
- ``pending_shards(build_dir, plan) -> [shard ids]``; ``write_shard(build_dir, shard, plan) -> stats``
- ``finalize(build_dir, plan) -> totals`` (manifest, quarantine, audits; raises AuditError)
- ``build_shards(lake_root, raw_root, out_root, recipe, workers=4, lake_db=None) -> totals`` (all of it)
- ``write_shard_views(lake_db, build_dir)``: samples / manifest views in ``lake.duckdb``
"""

from __future__ import annotations

from xvlm.data.shards.build import (
    AuditError,
    audit_build,
    build_dir,
    build_shards,
    finalize,
    load_build,
    pending_shards,
    plan_build,
    write_shards,
)
from xvlm.data.shards.recipe import Recipe, build_id, load_recipe, recipe_hash
from xvlm.data.shards.samples import build_samples
from xvlm.data.shards.views import write_shard_views
from xvlm.data.shards.writer import read_member, shard_done, shard_name, shard_paths, write_shard

__all__ = [
    "AuditError", "Recipe", "audit_build", "build_dir", "build_id", "build_samples", "build_shards", "finalize",
    "load_build", "load_recipe", "pending_shards", "plan_build", "read_member", "recipe_hash", "shard_done",
    "shard_name", "shard_paths", "write_shard", "write_shard_views", "write_shards",
]
