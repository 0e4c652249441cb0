"""Experiments as code: an experiment file, its validation, and the command of each run.

An experiment file (YAML, see configs/experiments/) holds the text of a report
(title, context, hypotheses, plan, conclusion: Markdown), the `setup` runs the others
build on (a dataset, a teacher, a vision model), `defaults` for the compared runs,
the `run_sets` (each a name, a colour and runs given as overrides of the defaults)
and the report's `sections` (which run sets to compare, a baseline, a threshold for
the speed-up, panels). Every run is one of dexvision's commands; its output goes to
`runs_dir/<run name>` (passed as `--out`). Arguments are flags: `{steps: 40k}` becomes
`--steps 40k`, `true` a bare flag, `null` drops a default, `set: {a.b: 1}` becomes
`--set a.b=1`; `{teacher}` in a value is replaced by the directory of the run named
`teacher`.

Seeds: `seeds: [0, 1, 2]` (or a count, `seeds: 3`) in `defaults` or in a run set makes
each of its runs one run per seed, named `<run>-seed<k>` and given that seed
(`--seed k`; train-vision: `--set seed=k`). run-experiment starts them seed by seed
(every run set's seed 0 first), so an interrupted study already holds whole seeds;
the report averages a run set over its seeds.

Claims: a section with a threshold and a baseline may list the original work's findings as
speed-ups, `claims: [{run_set: shared, versus: separate, speedup: [2, 3], text: "..."}]`
(`speedup: 4` for one factor, `[1, .inf]` for "faster"); the report gives each a verdict
(reproduced, contradicted or inconclusive) from the bootstrap CI over seeds.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from dexvision.config import ConfigError, check_choice, from_dict, read_yaml

COMMANDS = ("train-policy", "train-vision", "render-shards")  # the commands whose --out is a directory
RESERVED = ("logs",)  # runs_dir/logs holds run-experiment's logs and completion records
X_AXES = ("frames", "optimizer_steps", "minutes")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")


@dataclasses.dataclass
class RunSpec:
    name: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    command: str = ""  # default: the experiment's defaults.command
    seed: int | None = None  # set by seed expansion: this run is one seed of its run set
    base: str = ""  # set by seed expansion: the name before it (what --only and the report group by)


@dataclasses.dataclass
class RunSet:
    name: str
    color: str
    runs: list[RunSpec]
    note: str = ""  # Markdown shown under the run set in the report (e.g. why a run was shortened)
    seeds: list[int] | int | None = None  # one run per seed of each run (default: defaults.seeds)

    def __post_init__(self):
        if not _COLOUR.match(self.color):
            raise ValueError(f"color must look like #1f77b4, got {self.color!r}")
        if not self.runs:
            raise ValueError("a run set needs at least one run")


@dataclasses.dataclass
class Threshold:
    metric: str = "charts/median_successes"
    value: float = 40.0
    x: str = "frames"  # frames, optimizer_steps or minutes

    def __post_init__(self):
        check_choice("x", self.x, X_AXES)


@dataclasses.dataclass
class Panel:
    metric: str
    x: str = "frames"
    smoothing: float = 0.0  # exponential moving average weight of the previous value, in [0, 1)
    title: str = ""

    def __post_init__(self):
        check_choice("x", self.x, X_AXES)
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")


DEFAULT_PANELS = (
    Panel("charts/mean_reward", "frames", 0.6, "Mean reward vs frames collected"),
    Panel("charts/successes_per_episode", "optimizer_steps", 0.6, "Successes per episode vs optimizer steps"),
    Panel("charts/gradient_noise_scale", "optimizer_steps", 0.9, "Gradient noise scale (B_simple)"),
)


@dataclasses.dataclass
class Claim:
    """A finding of the original work, as a speed-up of `run_set` over `versus` to the section's
    threshold (versus's x / run_set's x: above 1, run_set is faster). The report gives it a verdict."""

    run_set: str
    speedup: list[float] | float  # one factor, or [low, high]; high .inf: "faster, by any factor above low"
    versus: str = ""  # default: the section's baseline
    text: str = ""  # the original's words, quoted in the report

    def __post_init__(self):
        if not isinstance(self.speedup, list):
            self.speedup = [self.speedup]
        if len(self.speedup) == 1:
            self.speedup = [self.speedup[0], self.speedup[0]]
        if len(self.speedup) != 2 or not 0 < self.speedup[0] <= self.speedup[1]:
            raise ValueError(f"speedup must be one positive factor or [low, high] with low <= high, "
                             f"got {self.speedup}")


@dataclasses.dataclass
class Section:
    title: str
    run_sets: list[str]
    text: str = ""
    baseline: str = ""  # a run set: speed-ups are relative to it
    threshold: Threshold | None = None
    panels: list[Panel] | None = None  # default: DEFAULT_PANELS
    claims: list[Claim] = dataclasses.field(default_factory=list)  # the original's findings, given verdicts


@dataclasses.dataclass
class Defaults:
    command: str = "train-policy"
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    seeds: list[int] | int | None = None  # seeds of every run set that names none (a list or a count)


@dataclasses.dataclass
class Experiment:
    title: str
    run_sets: list[RunSet]
    sections: list[Section]
    context: str = ""
    hypotheses: str = ""
    plan: str = ""
    conclusion: str = ""
    runs_dir: str = ""  # default: runs/<file name without .yaml>
    setup: list[RunSpec] = dataclasses.field(default_factory=list)
    defaults: Defaults = dataclasses.field(default_factory=Defaults)
    vision_runs: list[str] = dataclasses.field(default_factory=list)  # setup runs whose errors get a panel
    path: str = ""  # where it was read from (filled in by load_experiment)

    def all_runs(self) -> list[tuple[RunSpec, RunSet | None]]:
        """Setup runs first (in order), then each run set's runs."""
        return [(r, None) for r in self.setup] + [(r, s) for s in self.run_sets for r in s.runs]

    def launch_order(self) -> list[tuple[RunSpec, RunSet | None]]:
        """all_runs, the compared runs seed by seed: every run set's first seed, then the second..."""
        runs = self.all_runs()
        rank = {id(r): s.seeds.index(r.seed) if s and r.seed is not None else 0 for r, s in runs}
        setup = [p for p in runs if p[1] is None]
        return setup + sorted((p for p in runs if p[1] is not None), key=lambda p: rank[id(p[0])])

    def run_dir(self, name: str) -> Path:
        return Path(self.runs_dir) / name

    def run_set(self, name: str) -> RunSet:
        return next(s for s in self.run_sets if s.name == name)


def _validate(exp: Experiment, where: str) -> None:
    seen: dict[str, str] = {}
    for i, (run, run_set) in enumerate(exp.all_runs()):
        place = f"run set '{run_set.name}'" if run_set else f"setup[{i}]"
        if not _NAME.match(run.name):
            raise ConfigError(f"{where}: {place}: run name {run.name!r} must be letters, digits, '_', '-' or '.'")
        if run.name in RESERVED:
            raise ConfigError(f"{where}: {place}: run name '{run.name}' is reserved")
        if run.name in seen:
            raise ConfigError(f"{where}: run name '{run.name}' is used twice ({seen[run.name]} and {place})")
        seen[run.name] = place
        command = run.command or exp.defaults.command
        if command not in COMMANDS:
            raise ConfigError(f"{where}: run '{run.name}': unknown command '{command}' (valid: {', '.join(COMMANDS)})")
        if "out" in run.args:
            raise ConfigError(f"{where}: run '{run.name}': 'out' is set by run-experiment (runs_dir/<name>)")
    setup_names = [r.name for r in exp.setup]
    for run, run_set in exp.all_runs():
        args = {**exp.defaults.args, **run.args} if run_set else run.args
        for ref in _PLACEHOLDER.findall(str(args)):
            if ref not in setup_names:
                raise ConfigError(f"{where}: run '{run.name}' refers to '{{{ref}}}', which is not a setup run "
                                  f"(setup runs: {', '.join(setup_names) or 'none'})")
            if run_set is None and setup_names.index(ref) >= setup_names.index(run.name):
                raise ConfigError(f"{where}: setup run '{run.name}' refers to '{{{ref}}}', which runs after it")
    _validate_sections(exp, where)
    for name in exp.vision_runs:
        if name not in setup_names:
            raise ConfigError(f"{where}: vision_runs names '{name}', which is not a setup run")


def _validate_sections(exp: Experiment, where: str) -> None:
    """Run set names, and each section's run sets, baseline and claims."""
    set_names = [s.name for s in exp.run_sets]
    if len(set(set_names)) != len(set_names):
        raise ConfigError(f"{where}: two run sets share a name")
    for section in exp.sections:
        for name in section.run_sets + ([section.baseline] if section.baseline else []):
            if name not in set_names:
                raise ConfigError(f"{where}: section '{section.title}' names run set '{name}', which does not "
                                  f"exist (run sets: {', '.join(set_names)})")
        if section.baseline and section.baseline not in section.run_sets:
            raise ConfigError(f"{where}: section '{section.title}': the baseline must be one of its run sets")
        if section.claims and (section.threshold is None or not section.baseline):
            raise ConfigError(f"{where}: section '{section.title}': claims need a threshold and a baseline")
        for claim in section.claims:
            for name in (claim.run_set, claim.versus or section.baseline):
                if name not in section.run_sets:
                    raise ConfigError(f"{where}: section '{section.title}': a claim names run set '{name}', "
                                      f"which is not one of the section's ({', '.join(section.run_sets)})")
            if claim.run_set == (claim.versus or section.baseline):
                raise ConfigError(f"{where}: section '{section.title}': a claim compares run set "
                                  f"'{claim.run_set}' with itself")


def _seed_list(value: list[int] | int | None, where: str) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}: seeds must be a positive count or a list of seeds, got {value}")
        return list(range(value))
    if not value or len(set(value)) != len(value) or min(value) < 0:
        raise ConfigError(f"{where}: seeds must be distinct non-negative integers, got {value}")
    return list(value)


def _expand_seeds(exp: Experiment, where: str) -> None:
    """Each run of a run set with seeds becomes one run per seed, `<name>-seed<k>`."""
    default = _seed_list(exp.defaults.seeds, f"{where}: defaults")
    exp.defaults.seeds = default
    for run_set in exp.run_sets:
        seeds = _seed_list(run_set.seeds, f"{where}: run set '{run_set.name}'")
        seeds = default if seeds is None else seeds
        run_set.seeds = seeds
        if seeds is None:
            continue
        for run in run_set.runs:
            args = {**exp.defaults.args, **run.args}
            sets = {**(exp.defaults.args.get("set") or {}), **(run.args.get("set") or {})}
            if run.seed is not None or "seed" in args or "seed" in sets:
                raise ConfigError(f"{where}: run '{run.name}' sets its own seed, but its run set "
                                  f"'{run_set.name}' has seeds {seeds}; set one or the other")
        run_set.runs = [dataclasses.replace(run, name=f"{run.name}-seed{seed}", seed=seed, base=run.name)
                        for run in run_set.runs for seed in seeds]


INTERNAL_RUN_KEYS = ("seed", "base")  # RunSpec fields that seed expansion sets, never a file


def _refuse_internal_keys(data: dict, where: str) -> None:
    """A run that sets a field run-experiment itself fills in is refused in one line naming it."""
    runs = [("setup", r) for r in data.get("setup") or [] if isinstance(r, dict)]
    for run_set in data.get("run_sets") or []:
        if isinstance(run_set, dict):
            runs += [(f"run set '{run_set.get('name', '?')}'", r) for r in run_set.get("runs") or [] if isinstance(r, dict)]
    for place, run in runs:
        for key in INTERNAL_RUN_KEYS:
            if key in run:
                hint = ("give the run set seeds: [...] (or the run args: {seed: N})" if key == "seed"
                        else "drop it")
                raise ConfigError(f"{where}: {place}: run '{run.get('name', '?')}' sets '{key}', which run-experiment "
                                  f"sets itself: {hint}")


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file; every mistake ends in one line naming the field."""
    path = Path(path)
    data = read_yaml(path)
    _refuse_internal_keys(data, path.name)
    exp = from_dict(Experiment, data, where="")
    exp.path = str(path)
    if not exp.runs_dir:
        exp.runs_dir = str(Path("runs") / path.stem)
    _expand_seeds(exp, path.name)
    _validate(exp, path.name)
    return exp


def _substitute(value: Any, exp: Experiment) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: str(exp.run_dir(m.group(1))), value)
    return value


def run_args(exp: Experiment, run: RunSpec, in_set: bool) -> dict[str, Any]:
    """The run's resolved arguments: defaults (for run-set runs) updated by its own, placeholders filled."""
    args = dict(exp.defaults.args) if in_set else {}
    sets = dict(args.pop("set", None) or {})
    for key, value in run.args.items():
        if key == "set":
            sets.update(value or {})
        else:
            args[key] = value
    if run.seed is not None:  # train-vision takes its seed as a config key, the others as --seed
        if (run.command or exp.defaults.command) == "train-vision":
            sets["seed"] = run.seed
        else:
            args["seed"] = run.seed
    resolved = {k: _substitute(v, exp) for k, v in args.items() if v is not None and v is not False}
    if sets:
        resolved["set"] = {k: _substitute(v, exp) for k, v in sets.items()}
    return resolved


def command_line(exp: Experiment, run: RunSpec, in_set: bool) -> list[str]:
    """The command (without the executable's directory) that runs `run` into its run directory."""
    command = run.command or exp.defaults.command
    argv = [command]
    for key, value in run_args(exp, run, in_set).items():
        if key == "set":
            for k, v in value.items():
                argv += ["--set", f"{k}={_flag_value(v)}"]
        elif value is True:
            argv.append(f"--{key}")
        else:
            argv += [f"--{key}", _flag_value(value)]
    return argv + ["--out", str(exp.run_dir(run.name))]


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        import json  # noqa: PLC0415

        return json.dumps(value)
    return str(value)
