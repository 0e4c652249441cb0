"""`run-experiment`: launch every run of an experiment file that has no finished result yet.

    run-experiment configs/experiments/e2e-study.yaml             # one run after another, here
    run-experiment configs/experiments/e2e-study.yaml --dry-run   # print the commands and what is done
    run-experiment configs/experiments/e2e-study.yaml --ray auto  # compared runs in parallel over Ray
    run-experiment configs/experiments/hand-study.yaml --use teacher=runs/hand-teacher   # a teacher you have

Setup runs go first, in order (later ones may use earlier ones' outputs). A run is
finished when it exited 0: run-experiment then writes RUNS_DIR/logs/NAME.done.json
(command line, exit code, wall time, git SHA), and a later call skips it. A run that
was interrupted continues with --resume when it left a checkpoint. Each run's output
goes to RUNS_DIR/logs/NAME.log. With --ray the setup runs still go first, then the
compared runs fan out as Ray tasks (RUNS_DIR must be on a filesystem every node sees).

`--use NAME=DIR` stands an existing run directory (a dataset, a teacher, a pose model made
elsewhere) in for setup run NAME instead of running it: RUNS_DIR/NAME becomes a link to DIR,
its record says "reused", and the report's run table shows it as reused with DIR's own name,
git SHA and final metrics. The link and the record stay, so later calls need no --use.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from dexvision.distributed import connect_ray
from dexvision.config import check_flags
from dexvision.errors import ArgumentParser, UserError, cli
from dexvision.files import atomic_write, check_writable
from dexvision.track.experiment import Experiment, RunSpec, command_line, load_experiment
from dexvision.track.run import read_json
from dexvision.version import git_sha

log = logging.getLogger(__name__)
RESUMABLE = ("train-policy", "train-vision")


def _executable(command: str) -> str:
    local = Path(sys.executable).parent / command
    if local.exists():
        return str(local)
    found = shutil.which(command)
    if not found:
        raise UserError(f"command '{command}' not found (is dexvision installed in this environment?)")
    return found


# Each command an experiment can run, and the module with its parser and its side-effect-free
# config_from_args: every run's flags and config are checked before the first run starts.
_MODULES = {"train-policy": "dexvision.policy.train", "train-vision": "dexvision.vision.train",
            "render-shards": "dexvision.datasets.render_shards"}


def check_command(name: str, argv: list[str]) -> None:
    """Raise a one-line UserError if run `name`'s command line would be refused by its command."""
    import importlib  # noqa: PLC0415

    module = importlib.import_module(_MODULES[argv[0]])
    try:
        args = module.build_parser().parse_args(argv[1:])
    except UserError as e:
        raise UserError(f"run '{name}': {argv[0]}: {e}") from None
    try:
        module.config_from_args(args)
    except UserError as e:
        raise UserError(f"run '{name}': {e}") from None


def done_record(exp: Experiment, name: str) -> Path:
    return Path(exp.runs_dir) / "logs" / f"{name}.done.json"


def use_existing(exp: Experiment, name: str, directory: str | Path) -> None:
    """Make the existing run directory `directory` stand in for setup run `name` (see the module's text)."""
    run = next((r for r in exp.setup if r.name == name), None)
    if run is None:
        raise UserError(f"--use: '{name}' is not a setup run of {exp.path} (setup runs: "
                        f"{', '.join(r.name for r in exp.setup) or 'none'})")
    source = Path(directory).resolve()
    command = run.command or exp.defaults.command
    needs = "dataset.json" if command == "render-shards" else "checkpoint.pt"
    if not (source / needs).exists():
        raise UserError(f"--use {name}={directory}: no {needs} there (setup run '{name}' is a {command} run)")
    link = exp.run_dir(name)
    if link.is_symlink():
        if link.resolve() != source:
            raise UserError(f"--use {name}={directory}: {link} already stands for {link.resolve()}; delete the link "
                            f"and {done_record(exp, name)} to use another")
    elif link.exists():
        raise UserError(f"--use {name}={directory}: {link} is a run of this experiment already; delete it and "
                        f"{done_record(exp, name)} to use {directory} instead")
    else:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source, target_is_directory=True)
    # (again) on every --use: without its record a linked run would look interrupted and be resumed in DIR
    done_record(exp, name).parent.mkdir(exist_ok=True)
    record = {"argv": command_line(exp, run, in_set=False), "reused": str(source), "exit_code": 0,
              "git_sha": git_sha(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_record(exp, name, record)


def status(exp: Experiment, run: RunSpec, in_set: bool) -> tuple[str, list[str]]:
    """('done' | 'resume' | 'new', argv). A finished run whose command has since changed is an error."""
    argv = command_line(exp, run, in_set)
    record = done_record(exp, run.name)
    done = read_json(record, "done-record")
    if done is not None:
        if done.get("reused"):
            return "done", argv
        previous = done.get("argv")
        if not isinstance(previous, list):
            raise UserError(f"the done-record {record} names no command line; delete it to run '{run.name}' again")
        if previous != argv:
            raise UserError(f"run '{run.name}' finished with other arguments ({' '.join(previous[1:])}); delete "
                            f"{exp.run_dir(run.name)} and {record} to run it again")
        return "done", argv
    if argv[0] in RESUMABLE and (exp.run_dir(run.name) / "checkpoint.pt").exists():
        return "resume", argv + ["--resume"]
    return "new", argv


def execute(argv: list[str], log_path: str, cwd: str | None = None) -> tuple[int, float]:
    """Run one command (output to `log_path`); (exit code, wall seconds). Also the body of a Ray task."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "a") as f:
        f.write(f"$ {' '.join(argv)}\n")
        f.flush()
        code = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=os.environ.copy(), cwd=cwd).returncode
    return code, time.perf_counter() - start


def _ray_execute(argv: list[str], log_path: str, cwd: str | None = None) -> tuple[int, float, str]:
    """The body of a Ray task: `execute`, and the Ray node it ran on."""
    import ray  # noqa: PLC0415

    return (*execute(argv, log_path, cwd), ray.get_runtime_context().get_node_id())


def _record(exp: Experiment, name: str, argv: list[str], code: int, wall: float, node: str) -> None:
    if argv[-1] == "--resume":
        argv = argv[:-1]
    record = {"argv": argv, "exit_code": code, "wall_time_s": wall, "git_sha": git_sha(), "node": node,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_record(exp, name, record)


def _write_record(exp: Experiment, name: str, record: dict) -> None:
    """Write a run's done-record whole or not at all (a full disk leaves no cut record: the run is then
    resumed from its checkpoint on the next run-experiment, not misread)."""
    path = done_record(exp, name)
    try:
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
    except OSError as e:
        raise UserError(f"cannot record run '{name}' as done in {path} ({e.strerror or e}): free space there and "
                        f"run the experiment again; the run's outputs are in {exp.run_dir(name)}") from None


def _tail(path: Path, lines: int = 1) -> str:
    text = [line.split("\r")[-1] for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(text[-lines:])[:300] if text else "(no output)"


def launch(exp: Experiment, dry_run: bool = False, ray_address: str | None = None, cpus_per_run: float = 2,
           only: list[str] | None = None, gpus_per_run: float = 0) -> dict[str, str]:
    """Run what is not finished; returns {run name: 'done' | 'ran' | 'failed'}. Each run is recorded as
    finished the moment it exits 0, so an interrupted launch keeps what it completed."""
    plan = []
    for run, run_set in exp.launch_order():
        if only and run.name not in only and run.base not in only:
            continue
        state, argv = status(exp, run, run_set is not None)
        plan.append((run, run_set, state, argv))
    for run, _, state, argv in plan:  # before anything starts: a mistake in the last run ends here, in one line
        if state != "done":
            _executable(argv[0])
            check_command(run.name, argv[:-1] if argv[-1] == "--resume" else argv)
    if dry_run:
        for _, _, state, argv in plan:
            print(f"[{state:>6}] {' '.join(argv)}")
        return {run.name: state for run, _, state, _ in plan}
    outcome = {run.name: "done" for run, _, state, _ in plan if state == "done"}
    todo = [p for p in plan if p[2] != "done"]
    if ray_address is not None and todo:
        connect_ray(ray_address)
    logs = Path(exp.runs_dir) / "logs"
    bar = tqdm(total=len(todo), desc="run-experiment", unit="run")
    try:
        setup = [p for p in todo if p[1] is None]
        compared = [p for p in todo if p[1] is not None]
        for run, _, _, argv in setup:  # in order: later setup runs use earlier outputs
            bar.set_postfix(run=run.name)
            code, wall = execute([_executable(argv[0]), *argv[1:]], str(logs / f"{run.name}.log"))
            bar.update(1)
            if code != 0:
                bar.close()
                raise UserError(f"setup run '{run.name}' failed (exit {code}): {_tail(logs / f'{run.name}.log')}; "
                                f"log: {logs / f'{run.name}.log'}")
            _record(exp, run.name, argv, code, wall, socket.gethostname())
            outcome[run.name] = "ran"
        failed: list[str] = []

        def finished(run: RunSpec, argv: list[str], code: int, wall: float, node: str | None = None) -> None:
            bar.update(1)
            if code == 0:
                _record(exp, run.name, argv, code, wall, node or socket.gethostname())
                outcome[run.name] = "ran"
            else:
                outcome[run.name] = "failed"
                failed.append(f"{run.name} (exit {code}: {_tail(logs / f'{run.name}.log')})")

        if ray_address is not None:
            _run_on_ray(compared, logs, cpus_per_run, gpus_per_run, finished)
        else:
            for run, _, _, argv in compared:
                bar.set_postfix(run=run.name)
                finished(run, argv, *execute([_executable(argv[0]), *argv[1:]], str(logs / f"{run.name}.log")))
    finally:
        bar.close()
        if ray_address is not None and todo:
            import ray  # noqa: PLC0415

            ray.shutdown()
    if failed:
        raise UserError(f"{len(failed)} run(s) failed: {'; '.join(failed)}; logs in {logs}")
    return outcome


def _run_on_ray(compared: list, logs: Path, cpus: float, gpus: float, finished) -> None:
    """Each compared run as a Ray task reserving `cpus` and `gpus`, started in this directory (which,
    like the runs directory, must be on a filesystem every node sees). `launch` has connected to Ray."""
    import ray  # noqa: PLC0415

    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(_ray_execute)
    cwd = os.getcwd()
    pending = {task.remote([_executable(argv[0]), *argv[1:]], str(logs / f"{run.name}.log"), cwd): (run, argv)
               for run, _, _, argv in compared}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        run, argv = pending.pop(ready[0])
        finished(run, argv, *ray.get(ready[0]))


@cli
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    p = ArgumentParser(prog="run-experiment", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="experiment file (YAML), e.g. configs/experiments/e2e-study.yaml")
    p.add_argument("--dry-run", action="store_true", help="print each run's state and command; run nothing")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="fan the compared runs out over Ray (auto: the running cluster, local: a new local one)")
    p.add_argument("--cpus-per-run", type=float, help="--ray: CPUs a Ray task reserves (default 2)")
    p.add_argument("--gpus-per-run", type=float, help="--ray: GPUs a Ray task reserves (default 0)")
    p.add_argument("--only", nargs="+", metavar="RUN",
                   help="only these runs (by name; a seeded run's name without -seedK selects all its seeds)")
    p.add_argument("--use", action="append", default=[], metavar="NAME=DIR",
                   help="an existing run directory stands in for setup run NAME (repeatable)")
    args = p.parse_args(argv)
    check_flags(args, "cpus_per_run", "gpus_per_run")
    for flag, value in (("--cpus-per-run", args.cpus_per_run), ("--gpus-per-run", args.gpus_per_run)):
        if value is not None and args.ray is None:
            raise UserError(f"{flag} sets what each Ray task reserves: it needs --ray (local runs take the machine "
                            "one at a time)")
    cpus = 2.0 if args.cpus_per_run is None else args.cpus_per_run
    gpus = 0.0 if args.gpus_per_run is None else args.gpus_per_run
    exp = load_experiment(args.experiment)
    if not args.dry_run:  # every run writes under runs_dir: one that cannot be written ends here
        check_writable(exp.runs_dir, "runs_dir", directory=True)
    for item in args.use:
        name, sep, directory = item.partition("=")
        if not sep or not name or not directory:
            raise UserError(f"--use takes NAME=DIR, got '{item}'")
        use_existing(exp, name, directory)
    if args.only:
        names = {n for r, _ in exp.all_runs() for n in (r.name, r.base) if n}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            raise UserError(f"--only: no run named '{unknown[0]}' in {args.experiment}")
    outcome = launch(exp, args.dry_run, args.ray, cpus, args.only, gpus)
    if not args.dry_run:
        ran = sum(v == "ran" for v in outcome.values())
        print(f"{exp.title}: {ran} run(s) ran, {len(outcome) - ran} already finished; runs in {exp.runs_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
