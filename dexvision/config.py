"""Typed configuration: dataclasses loaded from YAML and overridden from the command line.

One dataclass per command (nested dataclasses for its sections). `load_config`
reads an optional YAML file, applies `key.sub=value` overrides, and validates every
field against its annotation, so a typo or a bad range ends in one clear line
naming the field instead of a traceback deep inside the renderer.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dexvision.errors import UserError

T = TypeVar("T")

# A closed interval [low, high] from which a value is drawn uniformly.
Range = tuple[float, float]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(UserError):
    """A configuration value that does not fit its field."""


def check_bounds(cfg: Any, bounds: dict[str, tuple[float | None, float | None]]) -> None:
    """ValueError naming the first field of `cfg` (a number or a [low, high] range) that goes past its
    valid bounds `{field: (low, high)}` (None: unbounded on that side): for the `__post_init__` of a
    config whose ranges may be widened, so that a widened range that means nothing ends in one line."""
    for name, (low, high) in bounds.items():
        value = getattr(cfg, name)
        values = value if isinstance(value, tuple) else (value,)
        if (low is not None and min(values) < low) or (high is not None and max(values) > high):
            shown = f"[{values[0]}, {values[1]}]" if isinstance(value, tuple) else f"{value}"
            valid = f"[{low}, {high}]" if low is not None and high is not None else \
                (f">= {low}" if high is None else f"<= {high}")
            raise ValueError(f"{name} {shown} goes past its valid bounds {valid}")


def _is_range(tp: Any) -> bool:
    return tp == Range


def _coerce_union(value: Any, tp: Any, where: str) -> Any:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, where)
        except ConfigError as e:
            errors.append(str(e))
    raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")


def _coerce_range(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{where}: expected a range [low, high], got {value!r}")
    low, high = (_coerce(v, float, where) for v in value)
    if low > high:
        raise ConfigError(f"{where}: range [{low}, {high}] has low > high")
    return (low, high)


def _coerce_sequence(value: Any, tp: Any, where: str) -> tuple | list:
    origin = typing.get_origin(tp)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    args = typing.get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        items = [_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
    else:
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


_SCALARS = {  # type -> (accepts, what the error calls it, conversion)
    float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number", float),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", int),
    bool: (lambda v: isinstance(v, bool), "true or false", bool),
    str: (lambda v: isinstance(v, str), "a string", str),
}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp` and convert it (lists to tuples, ints to floats)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of fields, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, where)
    if _is_range(tp):
        return _coerce_range(value, where)
    if origin in (tuple, list):
        return _coerce_sequence(value, tp, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, val_tp = typing.get_args(tp) or (Any, Any)
        return {str(k): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp in _SCALARS:
        accepts, name, convert = _SCALARS[tp]
        if not accepts(value):
            raise ConfigError(f"{where}: expected {name}, got {value!r}")
        return convert(value)
    raise ConfigError(f"{where}: unsupported field type {tp!r}")


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build dataclass `cls` from a plain dict, rejecting unknown keys and bad values."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}' (valid: {', '.join(sorted(fields))})"
        )
    missing = [f.name for f in fields.values() if f.name not in data and f.init
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"missing config key '{prefix}{missing[0]}' (required: {', '.join(missing)})")
    kwargs = {
        name: _coerce(value, hints[name], f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-ready form of a config (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_override(data: dict, override: str) -> None:
    """Apply one `a.b.c=value` override (value parsed as YAML) to a nested dict in place."""
    if "=" not in override:
        raise ConfigError(f"override '{override}' must look like key.sub=value")
    key, raw = override.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"override '{override}': value is not valid YAML") from None
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{override}': '{part}' is not a section")
    node[parts[-1]] = value


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with one-line errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{at}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """Defaults of `cls`, updated from the YAML file at `path`, then from `overrides`."""
    data = to_dict(cls())
    if path is not None:
        deep_update(data, read_yaml(path))
    for override in overrides:
        apply_override(data, override)
    return from_dict(cls, data)


def deep_update(base: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value


def flag_overrides(args: Any, values: tuple[str, ...] | dict[str, str], switches: tuple[str, ...] = ()) -> list[str]:
    """A command's overrides: its `--set` ones, then `field=value` for each of the flags `values` that was
    given and `field=true` for each of the `switches` that was set. `values` names the flags by their
    argparse dest, which is the field's name, or maps each dest to its (dotted) field."""
    overrides = list(getattr(args, "set", None) or [])
    fields = values if isinstance(values, dict) else {flag: flag for flag in values}
    for flag, field in fields.items():
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{field}={json.dumps(value)}")
    overrides += [f"{flag}=true" for flag in switches if getattr(args, flag)]
    return overrides
