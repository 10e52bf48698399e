"""``xvlm prepare``'s download path against the least a Python HTTP download can do, on 127.0.0.1.

- **fetch**: ``xvlm.data.prepare.fetch`` (``.part`` file, 1 MiB reads, a progress step, size check,
  ``os.replace``) with ``sha256`` given (the check a publisher's checksum costs: one more read);
- **fetch-nosum**: the same without a checksum (most catalogue files: size check only);
- **baseline**: ``urllib.request.urlopen`` + ``shutil.copyfileobj`` into the target, nothing else.

A file of ``--mb`` random MB is served by ``http.server`` in a thread; sides interleaved, order
alternating, ``--repeat`` times; median wall time and the ratio to the baseline are printed.

    .venv/bin/python bench/prepare_fetch.py --mb 512 --repeat 3
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from xvlm.data.prepare import fetch


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prepare-bench-"))
    src = work / "serve" / "blob.bin"
    src.parent.mkdir()
    with open(src, "wb") as f:
        for _ in range(args.mb):
            f.write(os.urandom(1 << 20))
    size, sha = src.stat().st_size, hashlib.sha256(src.read_bytes()).hexdigest()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(src.parent)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/blob.bin"

    def baseline(dest: Path) -> None:
        with urllib.request.urlopen(url) as r, open(dest, "wb") as out:  # noqa: S310 - loopback
            shutil.copyfileobj(r, out, 1 << 20)

    sides = {"baseline": baseline,
             "fetch": lambda d: fetch(url, d, size=size, sha256=sha),
             "fetch-nosum": lambda d: fetch(url, d, size=size)}
    times: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(args.repeat):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for name in order:
            dest = work / f"{name}.bin"
            dest.unlink(missing_ok=True)
            t0 = time.perf_counter()
            sides[name](dest)
            times[name].append(time.perf_counter() - t0)
            assert dest.stat().st_size == size
            dest.unlink()
    httpd.shutdown()
    shutil.rmtree(work)
    base = statistics.median(times["baseline"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<12} median {med:6.2f} s  {args.mb / med:7.1f} MB/s  ratio to baseline {med / base:.2f}")


if __name__ == "__main__":
    main()
