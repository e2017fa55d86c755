r"""Timing, memory and machine measurements shared by the benchmark scripts.

* Throughput: every operation is called ``inner`` times per repeat (``inner`` chosen so that a
  repeat lasts about ``target`` seconds), the libraries are interleaved repeat by repeat, and the
  median over repeats is reported in samples per second.
* Peak memory: the peak of the tensor memory allocated *during* one call, above what was live
  at its start, read from torch.profiler's allocation events (``profile_memory=True``): every
  allocation and free of torch's CPU allocator, summed in time order. It counts activations,
  gradients and temporaries; it does not count the parameters, the Adam state (allocated by a
  warm-up step) or allocations outside torch's allocator (Python objects, oneDNN scratch).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile


def seconds_per_call(fn: Callable[[], object], inner: int) -> float:
    r"""Wall time of ``fn`` averaged over ``inner`` back-to-back calls."""
    return timed(fn, inner)[0]


def timed(fn: Callable[[], object], inner: int) -> tuple[float, float]:
    r"""Wall time and CPU time of this process (all threads) of ``fn``, averaged over ``inner``
    back-to-back calls. On a shared machine the CPU time moves much less with the load."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - wall) / inner, (time.process_time() - cpu) / inner


class Timer:
    r"""Interleaved, repeated timing of named operations.

    ``add(key, fn)`` warms ``fn`` up once and calibrates how many calls make a repeat;
    ``run(repeats)`` then times every key once per repeat, in an order rotated between repeats,
    and ``median(key)`` is the median wall seconds per call (``median(key, cpu=True)`` the
    median CPU seconds). An operation whose single call exceeds ``slow`` seconds is repeated
    only while its total stays under ``slow_budget``.
    """

    def __init__(self, target: float = 0.2, slow: float = 2.0, slow_budget: float = 12.0):
        self.target, self.slow, self.slow_budget = target, slow, slow_budget
        self.fns: dict[object, Callable[[], object]] = {}
        self.inner: dict[object, int] = {}
        self.single: dict[object, float] = {}
        self.times: dict[object, list[float]] = {}
        self.cpu: dict[object, list[float]] = {}

    def add(self, key: object, fn: Callable[[], object]) -> None:
        first, first_cpu = timed(fn, 1)
        # a second call, unless the first alone was slow: warm caches and lazy buffers; a slow
        # call is its own warm-up and counts as the first repeat
        slow = first > self.slow
        single = first if slow else seconds_per_call(fn, 1)
        self.fns[key], self.single[key] = fn, single
        self.inner[key] = max(1, math.ceil(self.target / max(single, 1e-7)))
        self.times[key] = [first] if slow else []
        self.cpu[key] = [first_cpu] if slow else []

    def run(self, repeats: int) -> None:
        keys = list(self.fns)
        for r in range(repeats):
            shift = r % max(len(keys), 1)
            for key in keys[shift:] + keys[:shift]:
                spent = sum(self.times[key])
                if self.times[key] and self.single[key] > self.slow and spent > self.slow_budget:
                    continue
                wall, cpu = timed(self.fns[key], self.inner[key])
                self.times[key].append(wall)
                self.cpu[key].append(cpu)

    def median(self, key: object, cpu: bool = False) -> float:
        return statistics.median((self.cpu if cpu else self.times)[key])

    def spread(self, key: object) -> float:
        r"""Relative spread of the repeats, (max - min) / median."""
        t = self.times[key]
        return (max(t) - min(t)) / statistics.median(t)


def peak_bytes(fn: Callable[[], object]) -> int:
    r"""Peak tensor memory allocated during one call of ``fn``, above the level at its start."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    ]
    events.sort()
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak


def matmul_gflops(n: int, k: int, m: int, seconds: float = 0.5, repeats: int = 5) -> float:
    r"""Best-of-``repeats`` GFLOP/s of ``torch.mm`` on ``(n, k) @ (k, m)`` float32 matrices
    (:math:`2nkm` floating-point operations per product), per second of CPU time divided by
    the number of threads (wall time on a quiet machine; steadier under load)."""
    a, b = torch.randn(n, k), torch.randn(k, m)
    out = torch.empty(n, m)

    def fn() -> None:
        torch.mm(a, b, out=out)

    single = seconds_per_call(fn, 3)
    inner = max(1, math.ceil(seconds / max(single, 1e-7)))
    best = min(timed(fn, inner)[1] for _ in range(repeats)) / torch.get_num_threads()
    return 2 * n * k * m / best / 1e9


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    rev = out.stdout.strip() or "unknown"
    return rev + (" (with local changes)" if dirty.stdout.strip() else "")


def machine(versions: dict[str, str], root: Path) -> dict[str, object]:
    r"""What the numbers were measured on: CPU, cores, threads and library versions."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tractable_revision": git_revision(root),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
