"""``xvlm prepare`` against a local HTTP mirror on 127.0.0.1 built from the sample corpus: layout,
resume after a dropped connection, a corrupt archive re-fetched, a 404 reported per file, reruns
skipping what is complete, manual files, the dry run; and img2dataset's real output read by the ingest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.prepare.server import MirrorServer, web_answers
from xvlm.data.lake import IngestConfig, ingest_lake
from xvlm.data.lake.sources import source_inputs
from xvlm.data.prepare import build_mirror, fetch_files, load_catalogue
from xvlm.data.prepare.catalogue import CATALOGUE, Catalogue
from xvlm.data.prepare.unpack import target_of
from xvlm.data.prepare.web import ImageSettings, download_images
from xvlm.data.sample_corpus.coco import write_coco
from xvlm.data.sample_corpus.common import Corpus
from xvlm.data.sample_corpus.downstream_retrieval import write_downstream_retrieval
from xvlm.data.sample_corpus.flickr import write_flickr30k
from xvlm.data.sample_corpus.vg import write_vg
from xvlm.data.sample_corpus.web import write_sbu
from xvlm.errors import BadInput


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus' COCO, Flickr30K, VG, SBU and retrieval-split files (its own writers, in their
    dependency order; the VQA / NLVR2 writer, 8 of its 10 s, is left out: no test here reads it)."""
    ctx = Corpus(tmp_path_factory.mktemp("prep") / "corpus", seed=0)
    write_coco(ctx, 36, 12)
    write_flickr30k(ctx, 20)
    write_vg(ctx, 40)
    write_sbu(ctx, 30)
    write_downstream_retrieval(ctx)
    return ctx.root


@pytest.fixture(scope="module")
def mirror(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prep") / "mirror"
    build_mirror(corpus, out, load_catalogue().files("16m"))
    return out


def _xvlm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120)


def test_catalogue_places_every_file_the_ingest_reads_by_default() -> None:
    cat = load_catalogue()
    cfg = IngestConfig(raw_root=Path("/R"), out=Path("/L"))
    placed = {t for f in cat.files("16m") for t in f.place.values()}
    for source in cfg.enabled_sources():
        for p in source_inputs(cfg, source).files:
            rel = p.relative_to("/R").as_posix()
            assert rel in placed, (source, rel)
    for name, w in cat.web.items():  # the web folders and layouts are the ingest's defaults
        paths = getattr(cfg, name)
        assert (w.captions, w.layout, w.images_dir) == (paths.captions, paths.layout, paths.images_dir)


def test_catalogue_is_checked_strictly() -> None:
    doc = json.loads(CATALOGUE.read_text())
    doc.pop("_comment")
    from xvlm.configtree import build

    bad = json.loads(json.dumps(doc))
    bad["sources"]["vg"]["files"]["objects.json.zip"]["sha265"] = "x"
    with pytest.raises(BadInput, match=r"catalogue.sources.vg.files.objects.json.zip: unknown keys \['sha265'\]"):
        build(Catalogue, bad, "catalogue")
    bad = json.loads(json.dumps(doc))
    bad["sources"]["vg"]["files"]["objects.json.zip"]["place"] = {"**/objects.json": "../objects.json"}
    with pytest.raises(BadInput, match="must be a relative path inside the raw root"):
        build(Catalogue, bad, "catalogue")


def test_member_patterns() -> None:
    place = {"train2017/": "coco/train2017/", "**/patch8/": "objects365/train/patch8/",
             "**/image_data.json": "vg/image_data.json", "annotations/captions_val2017.json": "coco/a.json"}
    assert target_of("train2017/0001.jpg", place) == ("train2017/", "coco/train2017/0001.jpg")
    assert target_of("images/v1/patch8/x.jpg", place) == ("**/patch8/", "objects365/train/patch8/x.jpg")
    assert target_of("patch8/x.jpg", place) == ("**/patch8/", "objects365/train/patch8/x.jpg")
    assert target_of("patch80/x.jpg", place) is None
    assert target_of("image_data.json", place) == ("**/image_data.json", "vg/image_data.json")
    assert target_of("v1.2/image_data.json", place)[1] == "vg/image_data.json"
    assert target_of("annotations/captions_val2017.json", place)[1] == "coco/a.json"
    assert target_of("annotations/person_keypoints_val2017.json", place) is None


def _same_files(a: Path, b: Path, rels: list[str]) -> None:
    for rel in rels:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


VG = ["vg/image_data.json", "vg/region_descriptions.json", "vg/objects.json", "vg/attributes.json"]


def test_resume_corrupt_404_and_rerun(corpus: Path, mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "raw"
    with MirrorServer(mirror) as srv:
        srv.faults.drop.add("vg/images.zip")
        srv.faults.corrupt.add("vg/region_descriptions.json.zip")
        srv.faults.missing.add("vg/objects.json.zip")
        r = fetch_files("4m", root, mirror=srv.url, sources=["vg"], workers=2, retries=3)
        by = {o.key: o for o in r.files}
        served = list(srv.faults.served)
        # the dropped download resumed from where it stopped (a Range request), and is whole
        images = [(rng, st) for p, rng, st in served if p == "vg/images.zip"]
        assert images[0] == (None, 200) and images[1][1] == 206 and images[1][0].startswith("bytes=")
        assert int(images[1][0].split("=")[1].rstrip("-")) > 0
        assert sorted(p.name for p in (root / "vg/VG_100K").iterdir()) == \
            sorted(p.name for p in (corpus / "vg/VG_100K").iterdir())
        _same_files(root, corpus, [f"vg/VG_100K/{p.name}" for p in (corpus / "vg/VG_100K").iterdir()])
        # the corrupted archive failed its CRC, was removed and fetched again
        assert [st for p, _, st in served if p == "vg/region_descriptions.json.zip"] == [200, 200]
        assert by["vg/region_descriptions.json.zip"].status == "fetched"
        # the missing file: one line naming it, the others are done
        assert by["vg/objects.json.zip"].status == "failed"
        assert by["vg/objects.json.zip"].detail == f"HTTP 404 Not Found ({srv.url}/vg/objects.json.zip)"
        assert {k: o.status for k, o in by.items() if k != "vg/objects.json.zip"} == dict.fromkeys(
            [k for k in by if k != "vg/objects.json.zip"], "fetched")
        assert not r.ok
        _same_files(root, corpus, [v for v in VG if v != "vg/objects.json"])
        # rerun: the 404 is gone upstream; only that file is fetched, the rest are checked and skipped
        srv.faults.missing.clear()
        n = len(srv.faults.served)
        r2 = fetch_files("4m", root, mirror=srv.url, sources=["vg"])
        assert r2.ok and [p for p, _, _ in srv.faults.served[n:]] == ["vg/objects.json.zip"]
        assert r2.counts() == {"complete": 5, "fetched": 1}
        _same_files(root, corpus, VG)
        # a placed file truncated on disk is noticed and fetched again
        (root / "vg/attributes.json").write_bytes((root / "vg/attributes.json").read_bytes()[:100])
        n = len(srv.faults.served)
        r3 = fetch_files("4m", root, mirror=srv.url, sources=["vg"])
        assert r3.ok and [p for p, _, _ in srv.faults.served[n:]] == ["vg/attributes.json.zip"]
        _same_files(root, corpus, VG)
    assert not list((root / ".prepare/downloads").rglob("*.zip"))  # archives removed once unpacked


def test_cli_404_manual_and_dry_run(mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "raw"
    with MirrorServer(mirror) as srv:
        srv.faults.missing.add("karpathy/caption_datasets.zip")
        dry = _xvlm("prepare", "4m", "--root", str(root), "--mirror", srv.url, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "to-fetch  vg/images.zip (~9.2 GB)" in dry.stdout and "would download ~" in dry.stdout
        assert not root.exists() and srv.faults.served == []  # nothing fetched
        p = _xvlm("prepare", "4m", "--root", str(root), "--mirror", srv.url, "-s", "karpathy",
                  "-s", "karpathy_finetune", "--no-web")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("error: prepare 4m is incomplete")
    assert "failed    karpathy/caption_datasets.zip: HTTP 404 Not Found (http://127.0.0.1:" in p.stdout
    assert (root / "karpathy/coco_karpathy_test.json").is_file()  # the other files are placed
    # no mirror: a file without a public link is reported with its instructions, not fetched
    m = _xvlm("prepare", "4m", "--root", str(root), "-s", "flickr30k", "--no-web")
    assert m.returncode == 2 and "Traceback" not in m.stderr
    assert "manual    flickr30k/flickr30k-images.tar.gz: Flickr30K images are given out on request" in m.stdout


def test_a_checksum_mismatch_is_one_failed_line(mirror: Path, tmp_path: Path) -> None:
    doc = json.loads(CATALOGUE.read_text())
    doc.pop("_comment")
    from xvlm.configtree import build

    files = doc["sources"]["karpathy_finetune"]["files"]
    good = hashlib.sha256((mirror / "karpathy_finetune/coco_karpathy_val.json").read_bytes()).hexdigest()
    files["coco_karpathy_val.json"]["sha256"] = good
    files["coco_karpathy_test.json"]["sha256"] = "0" * 64
    size = (mirror / "karpathy_finetune/coco_karpathy_train.json").stat().st_size
    files["coco_karpathy_train.json"]["size"] = size + 1
    cat = build(Catalogue, doc, "catalogue")
    r = fetch_files("4m", tmp_path / "raw", mirror=str(mirror), sources=["karpathy_finetune"], catalogue=cat)
    by = {o.key: (o.status, o.detail) for o in r.files}
    assert by["karpathy_finetune/coco_karpathy_val.json"][0] == "fetched"
    assert by["karpathy_finetune/coco_karpathy_test.json"] == ("failed", "sha256 mismatch (corrupt download)")
    assert by["karpathy_finetune/coco_karpathy_train.json"] == (
        "failed", f"{size} bytes, expected {size + 1} (truncated or changed upstream)")
    assert not (tmp_path / "raw/karpathy/coco_karpathy_test.json").exists()  # nothing half-right is placed
    assert not list((tmp_path / "raw/.prepare/downloads").rglob("*.part"))


def test_manual_file_given_by_hand_counts_as_complete(corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "raw"
    shutil.copytree(corpus / "flickr30k", root / "flickr30k")
    r = fetch_files("4m", root, sources=["flickr30k"])
    assert r.ok and [(o.status, o.detail) for o in r.files] == [("complete", "given by hand")]


@pytest.mark.slow  # ~10-25 s: img2dataset spawns its worker processes
def test_img2dataset_output_feeds_the_ingest(corpus: Path, tmp_path: Path) -> None:
    """The real img2dataset downloads SBU's sample images from the local server; the ingest reads its
    tar + parquet: the same lake rows as the sample corpus' imitation, but for the timeout's wording."""
    root = tmp_path / "raw"
    (root / "sbu").mkdir(parents=True)
    shutil.copy(corpus / "sbu/sbu-captions-all.json", root / "sbu")
    web = load_catalogue().web["sbu"]
    with MirrorServer(tmp_path, web_answers(corpus), stall_s=2.0) as srv, pytest.MonkeyPatch.context() as mp:
        mp.setenv("http_proxy", srv.url)  # urllib (img2dataset's downloader) asks the proxy for every URL
        mp.setenv("no_proxy", "")
        stats = download_images(root, "sbu", web, ImageSettings(processes=1, threads=4, timeout=1))
    assert {k: stats[k] for k in ("shards", "count", "successes", "failed_to_download")} == \
        {"shards": 1, "count": 30, "successes": 27, "failed_to_download": 3}
    assert stats["status_dict"] == {"success": 27, "HTTP Error 404: Not Found": 1, "HTTP Error 410: Gone": 1,
                                    "timed out": 1}
    assert sorted(p.name for p in (root / "sbu/images").iterdir()) == ["00000.parquet", "00000.tar",
                                                                       "00000_stats.json"]
    mine = ingest_lake(IngestConfig(raw_root=root, out=tmp_path / "lake"), ["sbu"])["sbu"]
    ref = ingest_lake(IngestConfig(raw_root=corpus, out=tmp_path / "ref"), ["sbu"])["sbu"]
    assert mine["entities"] == ref["entities"]
    assert mine["entities"]["images"]["quarantined"]["failed_to_download"] == 3
    con = duckdb.connect()
    for table in ("images", "captions", "quarantine"):
        q = f"SELECT * {'EXCLUDE (raw)' if table == 'quarantine' else ''} FROM read_parquet($p) ORDER BY ALL"  # noqa: S608 - test-authored
        a = con.execute(q, {"p": str(tmp_path / "lake" / table / "source=sbu/part-0.parquet")}).fetchall()
        b = con.execute(q, {"p": str(tmp_path / "ref" / table / "source=sbu/part-0.parquet")}).fetchall()
        assert a == b and a, table
    details = con.execute("SELECT json_extract_string(raw, '$.detail') FROM read_parquet($p) WHERE reason = "
                          "'failed_to_download' ORDER BY 1",
                          {"p": str(tmp_path / "lake/quarantine/source=sbu/part-0.parquet")}).fetchall()
    assert details == [("HTTP Error 404: Not Found",), ("HTTP Error 410: Gone",), ("timed out",)]
