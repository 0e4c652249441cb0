"""Processes and process groups: how many cores a command may use, and torchrun's DDP plumbing.

Shared by every command that starts processes or trains (render-shards, verify-shards,
train-vision, train-policy, evaluate-policy). Under torchrun each rank calls
`setup_distributed()`; decisions that end a loop (a time limit, a stop flag) go through
`any_rank` so that every rank takes them at the same step, never some ranks alone.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dexvision.errors import UserError

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: commands that only count cores (render-shards, verify-shards, and the
# worker processes they spawn) start without loading it.


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cores_per_process() -> int:
    """This process's share of the cores: torchrun's ranks on one node split them."""
    return max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def resolve_workers(text: str, flag: str = "--workers") -> int:
    """A worker-count flag: 'auto' (one per core) or a positive integer; one clear error otherwise."""
    if text == "auto":
        return available_cores()
    try:
        workers = int(text)
    except ValueError:
        raise UserError(f"{flag} must be 'auto' or a positive integer, got '{text}'") from None
    if workers < 1:
        raise UserError(f"{flag} must be >= 1, got {workers}")
    return workers


def stop_workers(conns: list, procs: list, goodbye, timeout: float = 5.0) -> None:
    """End worker processes: send each its `goodbye` message, wait, terminate the ones still running,
    close the pipes. Safe when a worker is already gone."""
    for conn in conns:
        try:
            conn.send(goodbye)
        except (BrokenPipeError, OSError):
            pass
    for proc in procs:
        proc.join(timeout=timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join()
    for conn in conns:
        conn.close()


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); initializes the process group under torchrun (gloo on CPU, NCCL on GPU)."""
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain process (for what only one process prints or writes)."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist  # noqa: PLC0415

        dist.barrier()


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when `flag` is true on at least one (a MAX all-reduce; the flag itself when alone)."""
    if world == 1:
        return flag
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_lists(items: list, world: int) -> list:
    """Every rank's `items`, concatenated in rank order, on every rank (the list itself when alone)."""
    if world == 1:
        return list(items)
    import torch.distributed as dist  # noqa: PLC0415

    parts: list = [None] * world
    dist.all_gather_object(parts, list(items))
    return [x for part in parts for x in part]


def all_mean(value: float, world: int) -> float:
    """The mean of every rank's `value`, on every rank (the value itself when alone)."""
    values = gather_lists([float(value)], world)
    return sum(values) / len(values)


def teardown(world: int) -> None:
    if world > 1:
        import torch.distributed as dist  # noqa: PLC0415

        if dist.is_initialized():
            dist.destroy_process_group()


RAY_CONNECT_TIMEOUT_S = 5.0  # an address that does not answer in this long is not a running Ray head
RAY_DEFAULT_PORT = 6379


def _ray_head(address: str) -> tuple[str, int] | None:
    """(host, port) of the Ray head an address names ('host', 'host:port', 'ray://host:port'); for 'auto',
    the running cluster's (RAY_ADDRESS, else the address file `ray start` leaves in /tmp/ray); None when there
    is nothing to reach (Ray itself then says so at once)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        current = "/tmp/ray/ray_current_cluster"
        if not address and os.path.isfile(current):
            with open(current) as f:
                address = f.read().strip()
        if not address or address == "auto":
            return None
    address = address.split("://", 1)[-1].strip().rstrip("/")
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, str(RAY_DEFAULT_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise UserError(f"--ray {address}: expected 'auto', 'local' or HOST:PORT")
    return host, int(port)


def check_ray_reachable(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """One line, within `timeout` seconds, when the Ray head `address` names does not answer: ray.init itself
    waits on an unreachable address far longer (for a lost packet, for ever)."""
    import socket  # noqa: PLC0415

    head = None if address == "local" else _ray_head(address)
    if head is None:
        return
    try:
        socket.create_connection(head, timeout=timeout).close()
    except socket.timeout:
        raise UserError(f"cannot reach Ray at '{address}': no answer from {head[0]}:{head[1]} in {timeout:g} s "
                        "(is the head node up, and the address and port right? 'ray status' on it tells)") from None
    except OSError as e:
        raise UserError(f"cannot reach Ray at '{address}': {head[0]}:{head[1]}: {e.strerror or e} (start the "
                        "cluster with 'ray start --head', or pass --ray local)") from None


def connect_ray(address: str, env_vars: dict[str, str] | None = None) -> None:
    """Connect this process to the Ray cluster at `address` ('local' starts a one-node cluster, 'auto'
    finds a running one), quietly, with `env_vars` set for its tasks; one clear line if that fails."""
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'ray>=2.9'") from None
    import logging  # noqa: PLC0415

    if address != "local":
        check_ray_reachable(address)
    options = {"log_to_driver": False, "logging_level": logging.ERROR, "ignore_reinit_error": True}
    if env_vars:
        options["runtime_env"] = {"env_vars": env_vars}
    try:
        if address == "local":
            ray.init(include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"cannot connect to Ray at '{address}': {str(e).splitlines()[0]}") from None
