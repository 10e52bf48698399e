"""The one strict loader for configuration trees: JSON dicts -> typed dataclasses, unknown keys refused.

Every config in the project (a pre-training run, its ``data`` / ``optim`` / ``downstream`` sections, a
downstream task, the lake's ingest settings) is a dataclass; ``build(cls, d)`` is how a dict becomes one.
Why one loader: a typo (``"epoch": 2``) must fail before a training run starts, with the path of the bad
key, the same way everywhere; five hand-written validators drifted apart (issue #18).

Rules, from the field's type hint:
- a dataclass field takes a dict (built recursively) or an instance;
- ``dict[str, V]`` takes a dict whose values are converted by these rules for ``V`` (a dataclass ``V``:
  each built, its key in the path);
- ``tuple[...]`` takes a list (JSON has no tuples); everything else is taken as it is;
- keys named in ``cls.RENAMED`` (``{"old": "new"}``) are accepted for one release with a
  ``DeprecationWarning`` naming the new key (docs/configuration.md lists them).
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from typing import Any, TypeVar

from xvlm.errors import BadInput

T = TypeVar("T")


def known_keys(cls: type) -> list[str]:
    return sorted(f.name for f in dataclasses.fields(cls))


def check_keys(cls: type, d: dict[str, Any], where: str) -> dict[str, Any]:
    """``d`` with deprecated names mapped to their new ones; ``BadInput`` on any key ``cls`` lacks."""
    if not isinstance(d, dict):
        raise BadInput(f"{where}: expected a JSON object, got {type(d).__name__} {d!r}")
    out = dict(d)
    for old, new in getattr(cls, "RENAMED", {}).items():
        if old in out:
            if new in out:
                raise BadInput(f"{where}: both {old!r} (deprecated) and {new!r} given; keep {new!r}")
            warnings.warn(f"{where}.{old} is deprecated: use {where}.{new}", DeprecationWarning, stacklevel=3)
            out[new] = out.pop(old)
    unknown = sorted(set(out) - set(known_keys(cls)))
    if unknown:
        raise BadInput(f"{where}: unknown keys {unknown}; known: {known_keys(cls)}")
    return out


def build(cls: type[T], d: dict[str, Any] | T | None, where: str | None = None) -> T:
    """A ``cls`` from the dict ``d`` (strict; nested sections built too). ``where`` names ``d`` in errors."""
    where = where or cls.__name__
    if isinstance(d, cls):
        return d
    d = check_keys(cls, d or {}, where)
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in d.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # __post_init__ checks, wrong types
        if isinstance(exc, BadInput):
            raise
        raise BadInput(f"{where}: {exc}") from exc


def _convert(hint: Any, value: Any, where: str) -> Any:
    if value is None:
        return None
    for t in _alternatives(hint):
        if dataclasses.is_dataclass(t) and isinstance(t, type):
            return build(t, value, where)
        origin = typing.get_origin(t)
        if origin is dict and isinstance(value, dict):
            args = typing.get_args(t)
            if len(args) == 2:
                return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
            return dict(value)
        if origin is tuple and isinstance(value, list | tuple):
            return tuple(value)
    return value


def _alternatives(hint: Any) -> tuple[Any, ...]:
    """``A | None`` -> ``(A,)``; a plain hint -> ``(hint,)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(hint) if a is not type(None))
    return (hint,)


def to_dict(obj: Any) -> dict[str, Any]:
    """The inverse of ``build`` (tuples stay tuples; ``json.dumps`` writes them as lists)."""
    return dataclasses.asdict(obj)
