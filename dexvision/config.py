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
            valid = f"[{low}, {high}]" if low is not None and high is not None else _valid(low, high)
            raise ValueError(f"{name} {shown} goes past its valid bounds {valid}")


def check_choice(name: str, value: Any, choices: typing.Collection[str]) -> None:
    """ValueError unless `value` is one of `choices`: "<name> must be one of a, b, got 'c'" (a config's
    `__post_init__` names its field, and from_dict prefixes the section)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


# Bounds that several commands share, each stated once. A config's `__post_init__` checks its fields against
# them (`check_bounds(self, bounds(...))`), and a command's plain flags (`check_flags`) too, before any work.
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "image_size": (8, 1024),  # pixels per side of the images a model trains on (train-vision, train-policy)
    "batch_size": (1, None),
    "num_workers": (0, None),  # data loader processes (0: in the command's own process)
    "render_workers": (-1, None),  # -1: one per core, 0: in the command's own process
    "env_workers": (-1, None),  # -1: the default for the task
    "time_limit_min": (0, None),  # 0: no limit
    "eval_every_min": (0, None),
    "log_every_s": (0, None),
    "follow_wait_min": (0, None),
    "max_samples": (0, None),  # 0: all
    "episodes": (1, None),
    # every command's seed, one rule: what numpy's SeedSequence and torch.manual_seed both take, with room for
    # the offsets a trainer adds per rank and worker
    "seed": (0, 2**32 - 1),
    "tolerance": (0, None),  # a baseline's relative tolerance
    "cpus_per_run": (0.01, None),
    "gpus_per_run": (0, None),
}


def bounds(*names: str) -> dict[str, tuple[float | None, float | None]]:
    """The shared BOUNDS of the fields `names`, for `check_bounds`."""
    return {name: BOUNDS[name] for name in names}


def _valid(low: float | None, high: float | None) -> str:
    return f"within [{low}, {high}]" if low is not None and high is not None else \
        (f">= {low}" if high is None else f"<= {high}")


def check_flags(args: Any, *names: str) -> None:
    """One line for the first of a command's flags `names` (argparse dests, None when not given) that goes
    past its shared BOUNDS."""
    for name in names:
        value = getattr(args, name)
        low, high = BOUNDS[name]
        if value is not None and ((low is not None and value < low) or (high is not None and value > high)):
            shown = value if isinstance(value, int) else f"{value:g}"
            raise ConfigError(f"--{name.replace('_', '-')} must be {_valid(low, high)}, got {shown}")


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
        raise ConfigError(f"config file not found: {path}" if not path.exists() else
                          f"config file {path} is a directory, not a YAML file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text (a YAML file)") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path} ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{at}") from None
    if data is None:
        raise ConfigError(f"config file {path} is empty: a config holds a mapping of keys (leave --config out "
                          "for the defaults)")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, not a "
                          f"{'list' if isinstance(data, list) else type(data).__name__}")
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


def _same(a: Any, b: Any) -> bool:
    """Whether two values of one field are the same (a --set's YAML `1e-3` is a string, a flag's a number)."""
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def check_flag_agrees(sets: list[str], field: str, flag: str, value: Any) -> None:
    """Refuse a `--set field=...` that gives `field` another value than its own flag `flag` does."""
    for override in sets:
        key, sep, raw = override.partition("=")
        if not sep or key.strip() != field:
            continue
        try:
            given = yaml.safe_load(raw)
        except yaml.YAMLError:
            continue  # apply_override names it
        if not _same(given, value):
            shown = value if not isinstance(value, bool) else ""
            raise ConfigError(f"--set {override} disagrees with {flag} {shown}".rstrip() + "; give one of them")


def flag_overrides(args: Any, values: tuple[str, ...] | dict[str, str], switches: tuple[str, ...] = ()) -> list[str]:
    """A command's overrides: its `--set` ones, then `field=value` for each of the flags `values` that was
    given and `field=true` for each of the `switches` that was set. `values` names the flags by their
    argparse dest, which is the field's name, or maps each dest to its (dotted) field. A `--set` of a field
    that its own flag sets to another value is refused."""
    sets = list(getattr(args, "set", None) or [])
    overrides = list(sets)
    fields = values if isinstance(values, dict) else {flag: flag for flag in values}
    for flag, field in fields.items():
        value = getattr(args, flag)
        if value is not None:
            check_flag_agrees(sets, field, "--" + flag.replace("_", "-"), value)
            overrides.append(f"{field}={json.dumps(value)}")
    for flag in switches:
        if getattr(args, flag):
            check_flag_agrees(sets, flag, "--" + flag.replace("_", "-"), True)
            overrides.append(f"{flag}=true")
    return overrides
