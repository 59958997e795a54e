"""Ray for allocgym: a local Ray by default, an existing cluster by address.

Everything that runs on Ray goes through this module: ``allocgym sweep`` (Ray Tune, see
:mod:`allocgym.sweep`), ``allocgym study --address`` (folds x seeds as Ray tasks,
:class:`RayTrainMany`) and ``allocgym evaluate --address`` (chunks of allocators walked as
Ray tasks, :class:`RayRunAllocators`). Nothing here computes anything: it starts or joins Ray, sizes the
work units and moves jobs to workers and results back.

Addresses
---------
``local``
    Start a private Ray on this machine, sized to it (all its CPUs and GPUs unless told
    otherwise), and shut it down when the work ends. Its temporary files go under
    :data:`RAY_TEMP_DIR`, a short path: Ray's socket paths must stay under the AF_UNIX
    limit of 107 bytes, which a long ``$TMPDIR`` would break.
``auto``
    The Ray cluster already running on this machine (``ray start --head``).
``HOST:PORT``
    The GCS port of a cluster's head node (``ray start --head --port PORT``). Run
    directories and the trials ledger must be on storage every node sees at the same path
    (``docs/cluster.md``).

A malformed address is refused at once; an unreachable one within
:data:`CONNECT_TIMEOUT_S` seconds, with one line that names the fix, never a hang.

Determinism
-----------
A job trained as a Ray task runs :func:`allocgym.agents.train` with the job's config in a
worker whose working directory is the driver's, so relative run directories resolve the
same and the ledger records the same paths; training is a function of its config (one
torch thread, ``train.torch_threads``), so a study on Ray gives the serial results.
An evaluation walk on Ray is :func:`allocgym.evaluation.run_allocators` over a chunk of the
allocators with the driver's ``EnvParams``; every portfolio of a walk is stepped on its own
row, so a chunk's backtests equal the same allocators' rows in the serial batch bit for bit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from allocgym.errors import ClusterError, ConfigError

if TYPE_CHECKING:
    from allocgym.config import AllocgymConfig
    from allocgym.data import MarketData
    from allocgym.envs.core import EnvParams
    from allocgym.evaluation import Backtest

__all__ = [
    "CONNECT_TIMEOUT_S",
    "RAY_TEMP_DIR",
    "Address",
    "RayRunAllocators",
    "RayRuntime",
    "RayTrainMany",
    "TrialResources",
    "parse_address",
    "parse_resources",
    "ray_runtime",
    "require_tune",
]

RAY_TEMP_DIR = "/tmp/ray"
"""Temporary folder of a local Ray (short: Ray's AF_UNIX socket paths live under it)."""

CONNECT_TIMEOUT_S = 6.0
"""Seconds allowed to reach a Ray cluster at an address before giving up with a message."""

_PROBE_TIMEOUT_S = 2.5
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_ADDRESS_HELP = (
    "use local (start Ray on this machine), auto (the Ray cluster already running on this "
    "machine) or HOST:PORT of a Ray head's GCS port, e.g. 127.0.0.1:6379"
)


# ----------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class Address:
    """A parsed ``--address``.

    Attributes
    ----------
    kind : {"local", "auto", "remote"}
    host : str
        Host of a ``remote`` address ('' otherwise).
    port : int
        GCS port of a ``remote`` address (0 otherwise).
    """

    kind: str
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind != "remote":
            return self.kind
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> Address:
    """``local``, ``auto`` or ``HOST:PORT`` -> :class:`Address`.

    Raises
    ------
    ConfigError
        Anything else (the message lists the three forms).
    """
    raw = str(text).strip()
    low = raw.lower()
    if low in ("local", "auto"):
        return Address(low)
    bad = ConfigError(f"--address {raw!r} is not an address: {_ADDRESS_HELP}")
    if "://" in raw:
        raise ConfigError(
            f"--address {raw!r}: give the head's GCS address without a scheme (Ray Client "
            f"ray:// addresses are not supported): {_ADDRESS_HELP}"
        )
    if raw.startswith("["):  # [IPv6]:port
        host, sep, port_text = raw[1:].partition("]:")
        if not sep:
            raise bad
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep or ":" in host:
            raise bad
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(
            f"--address {raw!r}: the port must be a number in 1..65535 (the head's GCS port, "
            "6379 unless 'ray start --head --port' said otherwise)"
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_RE.match(host):
            raise bad from None
    return Address("remote", host, int(port_text))


@dataclass(frozen=True)
class TrialResources:
    """Ray resources of one trial or training job.

    Attributes
    ----------
    cpu : float
        CPUs reserved per job (> 0); one job per CPU is what training with one torch
        thread uses.
    gpu : float
        GPUs per job; fractions let several jobs share one GPU (0.25: four per GPU).
    """

    cpu: float = 1.0
    gpu: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """``{"cpu": ..., "gpu": ...}`` (Ray Tune's ``with_resources`` form)."""
        return {"cpu": self.cpu, "gpu": self.gpu}


DEFAULT_GPU_FRACTION = 0.25
"""GPUs per trial when the device is ``cuda`` and ``--resources`` names no gpu."""


def parse_resources(text: str | None, device: str = "auto") -> TrialResources:
    """``"cpu=1,gpu=0.25"`` -> :class:`TrialResources` for a job on ``device``.

    Parameters
    ----------
    text : str or None
        Comma list of ``cpu=N`` / ``gpu=F``; missing keys keep their default (cpu 1; gpu
        :data:`DEFAULT_GPU_FRACTION` on ``cuda``, else 0).
    device : {"auto", "cpu", "cuda"}
        The jobs' ``train.device``.

    Raises
    ------
    ConfigError
        Unknown key, a value that is not a number, ``cpu <= 0``, ``gpu < 0``, ``gpu > 0``
        with ``device: cpu`` (a GPU reserved and never used) or ``gpu = 0`` with
        ``device: cuda`` (the job would see no GPU).
    """
    values: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("cpu", "gpu"):
            raise ConfigError(f"--resources {text!r}: use cpu=N,gpu=F, e.g. cpu=1,gpu=0.25")
        try:
            values[key] = float(raw)
        except ValueError:
            raise ConfigError(f"--resources {key}={raw.strip()!r} is not a number") from None
    cpu = values.get("cpu", 1.0)
    gpu = values.get("gpu", DEFAULT_GPU_FRACTION if device == "cuda" else 0.0)
    if not cpu > 0:
        raise ConfigError(f"--resources cpu={cpu:g}: each job needs cpu > 0 (e.g. cpu=1)")
    if gpu < 0:
        raise ConfigError(f"--resources gpu={gpu:g}: use gpu >= 0")
    if device == "cpu" and gpu > 0:
        raise ConfigError(
            f"--resources gpu={gpu:g} with train.device = 'cpu' reserves a GPU no job uses: "
            "pass --device cuda (or auto) or gpu=0"
        )
    if device == "cuda" and gpu == 0:
        raise ConfigError(
            "--resources gpu=0 with train.device = 'cuda': Ray hides the GPUs from a job that "
            "reserves none; give a fraction, e.g. gpu=0.25 (four jobs per GPU)"
        )
    return TrialResources(cpu=cpu, gpu=gpu)


# ----------------------------------------------------------------------------- runtime


@dataclass(frozen=True)
class RayRuntime:
    """The Ray this process is attached to (yielded by :func:`ray_runtime`).

    Attributes
    ----------
    address : Address
        What was asked for.
    cpus, gpus : float
        Total CPUs and GPUs of the cluster.
    nodes : int
        Alive nodes.
    started_here : bool
        True when this process started Ray (``local``); the block's end shuts it down (or,
        for a cluster, disconnects from it).
    start_s : float
        Seconds it took to start or join Ray.
    """

    address: Address
    cpus: float
    gpus: float
    nodes: int
    started_here: bool
    start_s: float

    def describe(self) -> str:
        """One line for the console."""
        where = "local Ray" if self.address.kind == "local" else f"Ray cluster {self.address}"
        return (
            f"{where}: {self.nodes} node(s), {self.cpus:g} CPUs, {self.gpus:g} GPUs "
            f"(ready in {self.start_s:.1f} s)"
        )

    def check_fits(self, resources: TrialResources) -> None:
        """Refuse jobs that need more than the whole cluster (they would wait forever)."""
        if resources.cpu > self.cpus:
            raise ClusterError(
                f"each job asks for {resources.cpu:g} CPUs but the {self.describe()} has "
                f"{self.cpus:g}: lower --resources cpu"
            )
        if resources.gpu > self.gpus:
            raise ClusterError(
                f"each job asks for {resources.gpu:g} GPU but the {self.describe()} has "
                f"{self.gpus:g} GPUs: use --device cpu, or an --address of a cluster with GPUs"
            )


def _token_auth_for_explicit_address() -> None:
    # Ray turns token authentication on for `auto` when a token exists on this machine
    # (~/.ray/auth_token, RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH) but never for an explicit
    # address, so `ray start --head` on this machine, which turns it on the same way, could
    # not be reached by HOST:PORT. Do for an address what Ray does for `auto`; an explicit
    # RAY_AUTH_MODE always wins.
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:  # Ray's own rule (it also refreshes Ray's cached config)
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # another Ray: set the mode before Ray reads it
        if (Path.home() / ".ray" / "auth_token").is_file() or "RAY_AUTH_TOKEN" in os.environ:
            os.environ["RAY_AUTH_MODE"] = "token"
        return
    quiet = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # Ray warns that it turned authentication on: it is meant
    try:
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        quiet.setLevel(level)


def _probe(address: Address) -> None:
    """A TCP connect to the head's GCS port: refuses dead addresses in seconds."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ClusterError(
            f"--address {address}: cannot resolve host {address.host!r} ({err.strerror}): "
            "check the name, or use --address local"
        ) from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.settimeout(_PROBE_TIMEOUT_S)
        try:
            sock.connect(sockaddr)
        except TimeoutError:
            raise ClusterError(
                f"no answer from a Ray cluster at {address} within {_PROBE_TIMEOUT_S:g} s: "
                f"check that its head runs ('ray start --head --port {address.port}') and that "
                "the port is open to this machine, or use --address local"
            ) from None
        except OSError as err:
            raise ClusterError(
                f"no Ray cluster at {address} ({err.strerror or err}): start one there with "
                f"'ray start --head --port {address.port}', or use --address local"
            ) from None


def _init_within(kwargs: dict[str, Any], timeout_s: float, address: Address) -> None:
    """``ray.init(**kwargs)`` in a helper thread, abandoned after ``timeout_s``."""
    import ray

    box: dict[str, BaseException | None] = {}
    lock = threading.Lock()
    gave_up = False

    def connect() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # reported to the caller below
            with lock:
                box["error"] = exc
            return
        with lock:
            box["error"] = None
            late = gave_up
        if late:  # joined after the caller gave up: leave nothing behind
            ray.shutdown()

    worker = threading.Thread(target=connect, name="allocgym-ray-init", daemon=True)
    with _stderr_held() as held:
        worker.start()
        worker.join(timeout_s)
        with lock:
            answered = "error" in box
            gave_up = not answered
        if answered and box["error"] is None:
            held.release()  # joined: whatever Ray printed is for the user
    if not answered:
        raise ClusterError(
            f"{address} accepts connections but no Ray cluster answered within {timeout_s:.0f} s: "
            f"check it is the head's GCS port ('ray status --address {address}'); a cluster "
            "with token authentication also needs RAY_AUTH_MODE=token and its token "
            "(~/.ray/auth_token or RAY_AUTH_TOKEN) here"
        )
    error = box["error"]
    if error is not None:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if address.kind == "auto":
            raise ClusterError(
                "--address auto found no Ray cluster running on this machine: start one with "
                "'ray start --head', or use --address local"
            ) from None
        raise ClusterError(
            f"could not join the Ray cluster at {address}: {first[:300]} (the cluster must run "
            "the same Ray and Python versions as this machine)"
        ) from None


class _Held:
    def __init__(self) -> None:
        self.keep = False

    def release(self) -> None:
        self.keep = True


@contextlib.contextmanager
def _stderr_held() -> Iterator[_Held]:
    """Hold what is written to file descriptor 2 while Ray connects.

    Ray's C++ core logs every failed connection attempt to stderr; when the attempt fails
    the user gets one line naming the fix instead. Written back after ``release()``.
    """
    import tempfile

    held = _Held()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to hold
        yield held
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield held
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if held.keep:
                sink.seek(0)
                text = sink.read()
                if text:
                    os.write(2, text)


@contextlib.contextmanager
def ray_runtime(
    address: str | Address = "local",
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
) -> Iterator[RayRuntime]:
    """Start or join Ray for the duration of a ``with`` block.

    Parameters
    ----------
    address : str or Address
        ``local`` (default), ``auto`` or ``HOST:PORT`` (see the module docstring).
    num_cpus, num_gpus : int, optional
        Size of a ``local`` Ray; default everything this machine has. Ignored when joining
        a cluster (its nodes declare their own).

    Yields
    ------
    RayRuntime

    Raises
    ------
    ConfigError
        A malformed address.
    ClusterError
        The cluster cannot be reached within :data:`CONNECT_TIMEOUT_S` seconds.

    Notes
    -----
    When Ray is already initialised in this process (a notebook that called ``ray.init``),
    that Ray is used as it is and left running.
    """
    addr = address if isinstance(address, Address) else parse_address(address)
    start = time.perf_counter()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from the sweep
    import ray

    if ray.is_initialized():
        yield _describe(addr, started_here=False, start=start)
        return
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if addr.kind == "local":
        ray.init(
            address="local",  # never attach to RAY_ADDRESS or a running cluster by accident
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            _temp_dir=RAY_TEMP_DIR,
            **quiet,
        )
    else:
        if addr.kind == "remote":
            _probe(addr)
            _token_auth_for_explicit_address()
        remaining = max(CONNECT_TIMEOUT_S - (time.perf_counter() - start), 1.0)
        _init_within({"address": str(addr) if addr.kind == "remote" else "auto", **quiet},
                     remaining, addr)  # fmt: skip
    try:
        yield _describe(addr, started_here=addr.kind == "local", start=start)
    finally:
        ray.shutdown()


def _describe(addr: Address, *, started_here: bool, start: float) -> RayRuntime:
    import ray

    total = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return RayRuntime(addr, float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0)), nodes,
                      started_here, time.perf_counter() - start)  # fmt: skip


# ----------------------------------------------------------------------------- training jobs


def _train_job(
    cwd: str, cfg: AllocgymConfig, run_dir: str, market: MarketData, ledger: str
) -> dict[str, Any]:
    """One ``(cfg, run_dir)`` job on a worker: :func:`allocgym.agents.train` (continuing an
    interrupted run from its latest checkpoint, as the study does locally), ledger line."""
    from allocgym.agents import train

    if not os.path.isdir(cwd):
        raise ClusterError(
            f"the driver's working directory {cwd!r} does not exist on worker node "
            f"{socket.gethostname()!r}: run directories must be on storage every node mounts "
            "at the same path (docs/cluster.md)"
        )
    os.chdir(cwd)  # relative run directories and the ledger resolve as on the driver
    result = train(cfg, run_dir, market=market, ledger=ledger, resume=True)
    return {"run_dir": run_dir, "best_score": result.best_score, "host": socket.gethostname(),
            "wall_time_s": result.wall_time_s}  # fmt: skip


class RayTrainMany:
    """``train_many(jobs, market, ledger)`` of :func:`allocgym.study.run_study` on Ray.

    Every job is one Ray task (``resources`` reserved each); the market is put in Ray's
    object store once. Tasks are not retried: a job is one trial and gets one ledger line.
    The call returns when every job has ended; if any failed, it raises the first failure
    after the others finished (each failure is in the ledger, a crashed worker's too).

    Parameters
    ----------
    resources : TrialResources
    progress : callable, optional
        ``progress(message)`` per finished job.
    """

    def __init__(
        self,
        resources: TrialResources | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.resources = resources or TrialResources()
        self.progress = progress or (lambda _msg: None)

    def __call__(
        self,
        jobs: Sequence[tuple[AllocgymConfig, Path]],
        market: MarketData,
        ledger: Path,
    ) -> list[dict[str, Any]]:
        import ray

        if not jobs:
            return []
        if not ray.is_initialized():
            raise ClusterError("RayTrainMany runs inside `with ray_runtime(address):` only")
        task = ray.remote(_train_job).options(
            num_cpus=self.resources.cpu, num_gpus=self.resources.gpu, max_retries=0
        )
        market_ref = ray.put(market)
        cwd = os.getcwd()
        pending = {task.remote(cwd, cfg, str(run_dir), market_ref, str(ledger)): (cfg, run_dir)
                   for cfg, run_dir in jobs}  # fmt: skip
        self.progress(f"{len(jobs)} training jobs submitted to Ray")
        done: list[dict[str, Any]] = []
        failures: list[tuple[Path, BaseException]] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cfg, run_dir = pending.pop(ready[0])
            label = f"{Path(run_dir).parent.name}/{Path(run_dir).name}"
            try:
                out = ray.get(ready[0])
            except Exception as exc:
                failures.append((Path(run_dir), exc))
                self._record_crash(exc, cfg, run_dir, ledger)
                self.progress(f"failed {label}: {_first_line(exc)}")
                continue
            done.append(out)
            score = out["best_score"]
            shown = "n/a" if score is None else f"{score:.3f}"
            self.progress(
                f"trained {label} on {out['host']} in {out['wall_time_s']:.1f} s, best validation "
                f"Sharpe {shown} ({len(done) + len(failures)}/{len(jobs)})"
            )
        if failures:
            raise _cause(failures[0][1])
        return done

    @staticmethod
    def _record_crash(exc: BaseException, cfg: AllocgymConfig, run_dir: Path, ledger: Path) -> None:
        """A worker that died (no Python exception in train) left no ledger line: add it."""
        import ray.exceptions as rex

        if isinstance(exc, rex.RayTaskError):
            return  # train() ran and recorded the failure itself
        from allocgym.config import config_hash
        from allocgym.ledger import TrialsLedger, configuration_id, run_id_of, scored_metrics

        TrialsLedger(ledger).append({"config_hash": config_hash(cfg), "seed": int(cfg.train.seed),
                                     "run_dir": str(run_dir), "status": "failed",
                                     "metrics": scored_metrics(run_dir),
                                     "config_id": configuration_id(cfg),
                                     "run_id": run_id_of(run_dir),
                                     "note": f"Ray worker lost: {_first_line(exc)}"[:500]})  # fmt: skip


# ----------------------------------------------------------------------------- evaluation walks


def _walk_job(allocators: list[Any], params: EnvParams) -> tuple[list[Backtest], list[Any]]:
    """One chunk on a worker: its backtests and each allocator's ``front_`` (or None)."""
    from allocgym.evaluation import run_allocators

    backtests = run_allocators(allocators, params=params)
    return backtests, [getattr(a, "front_", None) for a in allocators]


class RayRunAllocators:
    """``runner(allocators, params, progress)`` of :func:`allocgym.evaluation.evaluate` on Ray.

    The allocators (agents and baselines) are dealt round-robin into chunks, each chunk
    walked by :func:`~allocgym.evaluation.run_allocators` as one Ray task on the driver's
    ``EnvParams`` (put in Ray's object store once); the backtests come back in the order of
    ``allocators``, and what a walk left on an allocator (``front_``, the last Pareto front)
    is copied onto the driver's object.

    Parameters
    ----------
    resources : TrialResources
        Reserved per task.
    chunks : int, optional
        Number of tasks; default as many as the cluster runs at once (its CPUs over
        ``resources.cpu``), at most one per allocator.
    progress : callable, optional
        ``progress(message)`` per finished chunk.
    """

    def __init__(
        self,
        resources: TrialResources | None = None,
        chunks: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if chunks is not None and chunks < 1:
            raise ConfigError(f"chunks={chunks}: give at least 1 task")
        self.resources = resources or TrialResources()
        self.chunks = chunks
        self.progress = progress or (lambda _msg: None)

    def __call__(
        self,
        allocators: Sequence[Any],
        params: EnvParams,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Backtest]:
        import ray

        if not allocators:
            return []
        if not ray.is_initialized():
            raise ClusterError("RayRunAllocators runs inside `with ray_runtime(address):` only")
        slots = self.chunks or max(
            1, int(ray.cluster_resources().get("CPU", 1.0) // self.resources.cpu)
        )
        n_chunks = min(len(allocators), slots)
        rows = [list(range(k, len(allocators), n_chunks)) for k in range(n_chunks)]
        task = ray.remote(_walk_job).options(
            num_cpus=self.resources.cpu, num_gpus=self.resources.gpu, max_retries=0
        )
        params_ref = ray.put(params)
        pending = {task.remote([allocators[i] for i in chunk], params_ref): chunk
                   for chunk in rows}  # fmt: skip
        self.progress(f"{len(allocators)} allocators in {n_chunks} evaluation tasks on Ray")
        out: list[Backtest | None] = [None] * len(allocators)
        finished = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            chunk = pending.pop(ready[0])
            try:
                backtests, fronts = ray.get(ready[0])
            except Exception as exc:
                for ref in pending:
                    ray.cancel(ref)
                raise _cause(exc) from None
            for i, bt, front in zip(chunk, backtests, fronts, strict=True):
                out[i] = bt
                if front is not None:
                    allocators[i].front_ = front
            finished += 1
            if progress is not None:
                progress(finished, n_chunks)
        return [bt for bt in out if bt is not None]


def _first_line(exc: BaseException) -> str:
    cause = _cause(exc)
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]


def _cause(exc: BaseException) -> BaseException:
    """The user-level exception behind a Ray task error (ConfigError stays ConfigError)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def require_tune() -> None:
    """Raise ClusterError naming the install command when Ray Tune or Optuna is missing."""
    import importlib.util

    missing = [m for m in ("ray", "optuna") if importlib.util.find_spec(m) is None]
    if missing:
        raise ClusterError(
            f"{' and '.join(missing)} not installed here: pip install 'allocgym[distributed]' "
            "(make setup installs it)"
        )
