"""End to end on the sample corpus: every planted quirk handled as QUIRKS.json expects, nothing lost,
reruns rewrite nothing, a changed file re-ingests only its source."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from xvlm.data.lake import IngestConfig, format_stats, ingest_lake, lake_sql, lake_stats
from xvlm.data.sample_corpus import write_sample_corpus

from .lake_fixtures import copy_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_corpus(tmp_path_factory.mktemp("lake") / "raw", seed=0)


@pytest.fixture(scope="session")
def lake(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("lake") / "lake"
    stats = ingest_lake(IngestConfig(raw_root=corpus, out=out))
    return out, stats


def q(lake_root: Path, sql: str, params: dict | None = None) -> list[tuple]:
    con = duckdb.connect(str(lake_root / "lake.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


def test_every_source_ingested_and_views_work(lake: tuple[Path, dict]) -> None:
    out, stats = lake
    assert set(stats) == {"coco", "karpathy", "flickr30k", "vg", "cc3m", "cc12m", "sbu", "objects365", "openimages"}
    cols, rows = lake_sql(out, "select source, count(*) from regions group by all")
    assert cols[0] == "source" and rows == [("vg", stats["vg"]["entities"]["regions"]["loaded"])]
    assert "vg" in format_stats(stats) and "box_outside_image=1" in format_stats(stats)
    # keys never contain dots (webdataset splits keys on the first dot)
    assert q(out, "select count(*) from images where image_key like '%.%'") == [(0,)]
    assert q(out, "select count(*), count(distinct image_key) from images")[0][0] == \
        q(out, "select count(distinct image_key) from images")[0][0]


def test_rows_in_equals_loaded_plus_quarantined_on_disk(lake: tuple[Path, dict]) -> None:
    out, stats = lake
    for source, s in stats.items():
        for entity, e in s["entities"].items():
            assert e["rows_in"] == e["loaded"] + sum(e["quarantined"].values()), (source, entity)
            if entity in ("images", "captions", "regions", "objects", "splits"):
                table = entity
                n = q(out, f"select count(*) from {table} where source = $s", {"s": source})[0][0]  # noqa: S608
                # an image listed identically in two files (COCO captions + instances) is one row
                assert n == e["loaded"] - e.get("merged", 0), (source, entity)
            got = dict(q(out, "select reason, count(*) from quarantine where source = $s and entity = $e "
                              "group by all", {"s": source, "e": entity}))
            assert got == e["quarantined"], (source, entity)
    assert lake_stats(out) == {k: v for k, v in stats.items()}


def test_rows_in_matches_the_raw_files(lake: tuple[Path, dict], corpus: Path) -> None:
    """rows_in is what the raw files hold, counted here independently of DuckDB."""
    _, stats = lake
    vg = json.loads((corpus / "vg/region_descriptions.json").read_text())
    assert stats["vg"]["entities"]["regions"]["rows_in"] == sum(len(i["regions"]) for i in vg)
    cap = [json.loads((corpus / f"coco/annotations/captions_{s}2017.json").read_text()) for s in ("train", "val")]
    assert stats["coco"]["entities"]["captions"]["rows_in"] == sum(len(c["annotations"]) for c in cap)
    lines = (corpus / "cc3m/Train_GCC-training.tsv").read_bytes().splitlines()
    assert stats["cc3m"]["entities"]["images"]["rows_in"] == len(lines)
    oi = (corpus / "openimages/oidv6-train-annotations-bbox.csv").read_text().splitlines()
    assert stats["openimages"]["entities"]["objects"]["rows_in"] == len(oi) - 1
    # the lookup records: every Karpathy sentence, every COCO-format category of every file
    kp = [json.loads(p.read_text()) for p in sorted((corpus / "karpathy").glob("dataset_*.json"))]
    assert stats["karpathy"]["entities"]["sentences"]["rows_in"] == \
        sum(len(i["sentences"]) for d in kp for i in d["images"]) > 0
    inst = [json.loads(p.read_text()) for p in sorted((corpus / "coco/annotations").glob("instances_*.json"))]
    assert stats["coco"]["entities"]["categories"]["rows_in"] == sum(len(d["categories"]) for d in inst) > 0


def _quarantined(out: Path, source: str, reason: str, locator: str | None = None,
                 raw_like: str | None = None) -> list[tuple]:
    sql = "select entity, file, locator, raw from quarantine where source = $s and reason = $r"
    params: dict[str, Any] = {"s": source, "r": reason}
    if locator is not None:
        sql += " and locator = $l"
        params["l"] = locator
    if raw_like is not None:
        sql += " and raw like $raw"
        params["raw"] = f"%{raw_like}%"
    return q(out, sql, params)


def _check_quirk(out: Path, quirk: dict[str, Any]) -> None:
    """Assert one QUIRKS.json entry is handled as its ``expected`` says (see docs/lake.md)."""
    kind, exp, ref, src = quirk["kind"], quirk["expected"], quirk.get("ref", {}), quirk["source"]
    loc = quirk["locator"]
    if exp.startswith("quarantine:"):
        reason = exp.split(":", 1)[1]
        if src in ("cc3m", "cc12m", "sbu") and quirk["file"].endswith(".parquet"):
            hits = _quarantined(out, src, reason, raw_like=f'"url":"{ref["url"]}"')
        elif src in ("cc3m", "cc12m"):           # TSV row, 0-based, no header -> 1-based line
            hits = _quarantined(out, src, reason, locator=f"line {int(loc) + 1}")
        elif src == "openimages":               # data row, 0-based, header not counted
            hits = _quarantined(out, src, reason, locator=f"line {int(loc) + 2}")
        elif quirk["file"] == "vg/attributes.json":  # the same object as in objects.json
            hits = _quarantined(out, src, reason, raw_like=f'"box_id":"{ref["object_id"]}"')
        else:
            hits = _quarantined(out, src, reason, locator=loc)
            assert all(h[1] == quirk["file"] for h in hits), hits
        assert hits, f"{quirk['id']}: no quarantine row with reason {reason}"
        return
    if exp == "clip":
        rows = q(out, "select clipped, x, y, w, h from regions where region_id = $r", {"r": ref["region_id"]})
        assert rows and rows[0][0] is True and rows[0][1] >= 0 and rows[0][2] >= 0, (quirk["id"], rows)
        return
    assert exp.startswith("keep:"), exp
    if kind == "crowd_box":
        oid = str(ref.get("annotation_id", ""))
        where = ("object_id = $o" if oid else "image_key = $k")
        params = {"o": oid} if oid else {"k": f"oi_{ref['image_id']}"}
        assert q(out, f"select bool_or(is_group) from objects where {where}", params) == [(True,)], quirk["id"]  # noqa: S608
    elif kind == "objects365_fake_or_reflected":
        flag = "fake" if "isfake" in quirk["detail"] else "reflected"
        rows = q(out, "select flags from objects where object_id = $o", {"o": str(ref["annotation_id"])})
        assert rows and flag in rows[0][0], (quirk["id"], rows)
    elif kind == "vg_object_without_attributes":
        rows = q(out, "select attributes from objects where object_id = $o", {"o": str(ref["object_id"])})
        assert rows == [(None,)], (quirk["id"], rows)
    elif kind == "coco_vg_shared_image":
        assert q(out, "select coco_id from images where image_key = $k", {"k": f"vg_{ref['image_id']}"}) == \
            [(ref["coco_id"],)]
        assert q(out, "select count(*) from images where image_key = $k", {"k": f"coco_{ref['coco_id']}"}) == [(1,)]
    elif kind == "karpathy_test_in_train":
        k = f"coco_{ref['cocoid']}"
        assert q(out, "select split from splits where image_key = $k", {"k": k}) == [("test",)]
        assert q(out, "select split from images where image_key = $k", {"k": k}) == [("train2017",)]
    elif kind == "cc3m_cc12m_duplicate_url":
        assert sorted(q(out, "select source from images where url = $u", {"u": ref["url"]})) == \
            [("cc12m",), ("cc3m",)]
    elif kind == "grayscale_image":
        assert q(out, "select count(*) from images where image_key = $k", {"k": f"coco_{ref['image_id']}"}) == [(1,)]
    elif kind in ("unbalanced_quote", "person_placeholder"):
        assert q(out, "select count(*) from images i join captions c using (image_key) where i.url = $u",
                 {"u": ref["url"]}) == [(1,)], quirk["id"]
    else:
        raise AssertionError(f"quirk kind {kind!r} ({exp}) has no check: add one")


def test_every_planted_quirk_is_handled_as_expected(lake: tuple[Path, dict], corpus: Path) -> None:
    out, _ = lake
    quirks = json.loads((corpus / "QUIRKS.json").read_text())["quirks"]
    assert len(quirks) >= 12
    for quirk in quirks:
        _check_quirk(out, quirk)


def test_no_other_quarantine_than_planted(lake: tuple[Path, dict], corpus: Path) -> None:
    """Every quarantine reason in the lake is one the corpus planted (or a consequence of one)."""
    out, _ = lake
    quirks = json.loads((corpus / "QUIRKS.json").read_text())["quirks"]
    planted = {qk["expected"].split(":", 1)[1] for qk in quirks if qk["expected"].startswith("quarantine:")}
    got = {r[0] for r in q(out, "select distinct reason from quarantine")}
    assert got <= planted | {"image_not_loaded"}, got - planted


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and "_tmp" not in p.parts}


def test_rerun_rewrites_nothing_and_a_changed_file_reingests_only_its_source(corpus: Path, tmp_path: Path) -> None:
    raw = copy_corpus(corpus, tmp_path / "raw")
    cfg = IngestConfig(raw_root=raw, out=tmp_path / "lake")
    first = ingest_lake(cfg)
    before = _mtimes(cfg.out)
    again = ingest_lake(cfg)
    assert all(s["skipped"] for s in again.values())
    assert _mtimes(cfg.out) == before
    # change one caption file: only cc3m is re-ingested, the other partitions are untouched
    tsv = raw / "cc3m/Train_GCC-training.tsv"
    tsv.write_bytes(tsv.read_bytes() + b"one more caption\thttp://sample.invalid/cc3m/new.jpg\n")
    third = ingest_lake(cfg)
    assert [s for s, st in third.items() if not st["skipped"]] == ["cc3m"]
    after = _mtimes(cfg.out)
    changed = {k for k in after if after[k] != before.get(k)}
    assert {k.split("/")[0] for k in changed} <= {"images", "captions", "regions", "objects", "splits",
                                                   "quarantine", "_manifest"}
    assert all("source=cc3m" in k or k == "_manifest/cc3m.json" for k in changed), changed
    c3 = third["cc3m"]["entities"]["images"]
    assert c3["rows_in"] == first["cc3m"]["entities"]["images"]["rows_in"] + 1
    assert c3["quarantined"].get("not_downloaded") == 1  # the new URL was never downloaded
    assert not list((cfg.out / "_tmp").iterdir())  # staging cleaned up


def test_deleted_partition_is_rebuilt(corpus: Path, tmp_path: Path) -> None:
    cfg = IngestConfig(raw_root=corpus, out=tmp_path / "lake", check_images=False)
    ingest_lake(cfg, sources=["vg"])
    part = cfg.out / "regions" / "source=vg" / "part-0.parquet"
    os.remove(part)
    st = ingest_lake(cfg, sources=["vg"])
    assert not st["vg"]["skipped"] and part.is_file()
