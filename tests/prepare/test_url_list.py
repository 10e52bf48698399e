"""The URL list img2dataset downloads from (``prepare.web.url_list``): the caption TSV's accepted rows,
read by the same SQL as ingest (a regression: it once lacked the line-number table that SQL joins)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from xvlm.data.prepare.catalogue import WebSpec
from xvlm.data.prepare.web import url_list


def test_url_list_of_a_tsv_with_a_rejected_line(tmp_path: Path) -> None:
    (tmp_path / "cc3m").mkdir()
    (tmp_path / "cc3m" / "train.tsv").write_bytes(
        b"a dog\thttp://x/1.jpg\nno url field\nthe sea\thttp://x/2.jpg\n")
    out = url_list(tmp_path, "cc3m", WebSpec(captions="cc3m/train.tsv", layout="caption_url",
                                             images_dir="cc3m/images"), tmp_path)
    t = pq.read_table(out).to_pylist()
    assert [(r["url"], r["caption"]) for r in t] == [("http://x/1.jpg", "a dog"), ("http://x/2.jpg", "the sea")]
