"""The source catalogue (``catalogue.json`` beside this file) as typed, checked data.

Why data and not code: the file names, URLs and archive layouts of the public releases change between
versions (VG 1.2 vs 1.4, OpenImages V6 vs V7, a moved mirror), and a user must be able to read in one
place what will be fetched, from where, under which terms, and where each member lands. The code only
knows the *kinds* of things (an archive type, a member pattern, a manual file); every name is here.

``load_catalogue()`` builds the tree with :mod:`xvlm.configtree` (unknown keys refused, the path of a
bad key in the message) and then checks what a type hint cannot: archive types, target paths (relative,
inside the raw root), that every recipe names known sources, that each web source's caption file is
placed by one of its files. ``Catalogue.files(recipe)`` expands the ``expand`` templates into the list
of concrete :class:`RemoteFile` a recipe needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from xvlm.configtree import build
from xvlm.errors import BadInput, BadKey

CATALOGUE = Path(__file__).with_name("catalogue.json")
ARCHIVES = ("none", "zip", "tar.gz", "tar", "gz")
WEB_LAYOUTS = ("caption_url", "url_caption", "sbu_json")


@dataclass(frozen=True)
class FileSpec:
    """One published file as the catalogue lists it (before ``expand``)."""

    archive: str
    place: dict[str, str]
    url: str | None = None
    size: int | None = None  # bytes, only where the publisher states it
    sha256: str | None = None
    md5: str | None = None
    approx_gb: float | None = None  # an estimate, for the dry run's disk total
    manual: str | None = None  # instructions when there is no public link
    recipes: tuple[str, ...] | None = None  # only these recipes (None: every recipe listing the source)
    expand: dict[str, list[Any]] | None = None  # {"i": [0, 50]} (a range) or {"i": ["a", "b"]}
    expand_format: str | None = None  # "hex": range values written as lower-case hex


@dataclass(frozen=True)
class SourceSpec:
    licence: str
    files: dict[str, FileSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class RecipeSpec:
    description: str
    sources: tuple[str, ...]
    web: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebSpec:
    """A web-caption source: its caption file, how that file is laid out, where img2dataset writes."""

    captions: str
    layout: str
    images_dir: str
    approx_images: int = 0
    approx_kb_per_image: float = 100.0


@dataclass(frozen=True)
class RemoteFile:
    """One concrete file to fetch: ``source/name`` is also its path on a mirror."""

    source: str
    name: str
    archive: str
    place: dict[str, str]
    url: str | None
    size: int | None
    sha256: str | None
    md5: str | None
    approx_gb: float | None
    manual: str | None

    @property
    def key(self) -> str:
        return f"{self.source}/{self.name}"


@dataclass(frozen=True)
class Catalogue:
    version: int
    recipes: dict[str, RecipeSpec]
    sources: dict[str, SourceSpec]
    web: dict[str, WebSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self)

    def recipe(self, name: str) -> RecipeSpec:
        if name not in self.recipes:
            raise BadKey(f"unknown recipe {name!r}; the catalogue has {sorted(self.recipes)}")
        return self.recipes[name]

    def files(self, recipe: str, sources: list[str] | None = None) -> list[RemoteFile]:
        """Every concrete file ``recipe`` needs (or only those of ``sources``), in catalogue order."""
        spec = self.recipe(recipe)
        wanted = list(spec.sources)
        if sources:
            unknown = sorted(set(sources) - set(self.sources))
            if unknown:
                raise BadKey(f"unknown source(s) {unknown}; the catalogue has {sorted(self.sources)}")
            wanted = [s for s in sources]
        out: list[RemoteFile] = []
        for source in wanted:
            for name, f in self.sources[source].files.items():
                if f.recipes is not None and recipe not in f.recipes:
                    continue
                out.extend(_expand(source, name, f))
        return out

    def web_sources(self, recipe: str, sources: list[str] | None = None) -> list[str]:
        return [s for s in self.recipe(recipe).web if not sources or s in sources]


def _values(f: FileSpec) -> list[str]:
    (var, vals), = f.expand.items()  # type: ignore[union-attr]
    if len(vals) == 2 and all(isinstance(v, int) for v in vals):
        fmt = "{:x}" if f.expand_format == "hex" else "{}"
        return [fmt.format(i) for i in range(vals[0], vals[1] + 1)]
    return [str(v) for v in vals]


def _expand(source: str, name: str, f: FileSpec) -> list[RemoteFile]:
    if not f.expand:
        subs: list[tuple[str, str] | None] = [None]
    else:
        (var,) = f.expand
        subs = [("{" + var + "}", v) for v in _values(f)]

    def s(text: str | None, sub: tuple[str, str] | None) -> str | None:
        return text if text is None or sub is None else text.replace(*sub)

    return [RemoteFile(source=source, name=s(name, sub) or name, archive=f.archive,
                       place={s(k, sub) or "": s(v, sub) or "" for k, v in f.place.items()},
                       url=s(f.url, sub), size=f.size, sha256=f.sha256, md5=f.md5, approx_gb=f.approx_gb,
                       manual=s(f.manual, sub)) for sub in subs]


def _safe_target(target: str, where: str) -> None:
    p = PurePosixPath(target)
    if not target or p.is_absolute() or ".." in p.parts or target.startswith(".prepare"):
        raise BadInput(f"{where}: target {target!r} must be a relative path inside the raw root")


def _check(cat: Catalogue) -> None:
    for rname, r in cat.recipes.items():
        unknown = sorted(set(r.sources) - set(cat.sources))
        if unknown:
            raise BadInput(f"catalogue.recipes.{rname}.sources: unknown sources {unknown}")
        bad_web = sorted(set(r.web) - set(cat.web) | (set(r.web) - set(r.sources)))
        if bad_web:
            raise BadInput(f"catalogue.recipes.{rname}.web: {bad_web} are not web sources of the recipe")
    for sname, src in cat.sources.items():
        for fname, f in src.files.items():
            where = f"catalogue.sources.{sname}.files.{fname}"
            if f.archive not in ARCHIVES:
                raise BadInput(f"{where}.archive: {f.archive!r} is not one of {list(ARCHIVES)}")
            if f.url is None and f.manual is None:
                raise BadInput(f"{where}: no url and no manual instructions")
            if not f.place:
                raise BadInput(f"{where}.place: empty (nothing would be placed)")
            if f.archive in ("none", "gz") and list(f.place) != [""]:
                raise BadInput(f"{where}.place: a single file ({f.archive}) takes one key \"\" -> target")
            if f.expand is not None and len(f.expand) != 1:
                raise BadInput(f"{where}.expand: exactly one variable")
            for member, target in f.place.items():
                _safe_target(target.replace("{", "").replace("}", ""), f"{where}.place[{member!r}]")
                if member.endswith("/") != target.endswith("/") and member:
                    raise BadInput(f"{where}.place[{member!r}]: a folder maps to a folder (both end in '/')")
    for wname, w in cat.web.items():
        if w.layout not in WEB_LAYOUTS:
            raise BadInput(f"catalogue.web.{wname}.layout: {w.layout!r} is not one of {list(WEB_LAYOUTS)}")
        targets = {t for f in cat.sources.get(wname, SourceSpec("")).files.values() for t in f.place.values()}
        if w.captions not in targets:
            raise BadInput(f"catalogue.web.{wname}.captions: {w.captions!r} is placed by no file of source {wname!r}")


def load_catalogue(path: str | Path = CATALOGUE) -> Catalogue:
    """The catalogue at ``path`` (default: the one in the repository), strictly checked."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BadInput(f"{path}: no such catalogue file") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})") from exc
    doc = {k: v for k, v in doc.items() if not k.startswith("_")}
    return build(Catalogue, doc, "catalogue")
