"""Sizes and measuring tools of speed.py: the clock, repeats, peak RSS, child runs."""

import ctypes
import gc
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torchgeo_specdm

#: The U-Net of benchmarks/configs/diffusion.yaml, the size the results are about.
DEFAULT_UNET: dict[str, Any] = {
    'block_out_channels': (64, 128, 128),
    'layers_per_block': 1,
}


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run."""

    pairs: int = 16
    repeats: int = 3
    fast_samplers: tuple[tuple[str, int], ...] = (
        ('dpmpp', 10),
        ('dpmpp', 15),
        ('dpmpp', 20),
        ('dpmpp', 25),
        ('ddim', 50),
    )
    overhead_batch: int = 16
    overhead_steps: int = 25
    overhead_repeats: int = 5
    train_scenes: int = 256
    train_warmup: int = 3
    train_steps: int = 16
    train_repeats: int = 3
    memory_counts: tuple[int, int, int] = (64, 256, 1024)
    memory_steps: int = 25
    shard_count: int = 16
    shard_steps: int = 10
    scaling_repeats: int = 7
    configs: tuple[tuple[int, int], ...] = (
        (64, 13),
        (128, 13),
        (256, 13),
        (64, 4),
        (64, 204),
    )


QUICK = Settings(
    train_steps=12,
    memory_counts=(64, 512, 1024),
    memory_steps=2,
    shard_count=8,
    shard_steps=2,
)


#: The clock of every timing: CPU seconds of this process (set by ``--clock``).
CLOCK: dict[str, Any] = {'name': 'cpu', 'now': time.process_time}


def now() -> float:
    """The benchmark clock's reading, in seconds."""
    value: float = CLOCK['now']()
    return value


def timed(function: Callable[[], Any], repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls.

    Args:
        function: the work.
        repeats: calls to time.

    Returns:
        the seconds of each call.
    """
    times = []
    for _ in range(repeats):
        start = now()
        function()
        times.append(now() - start)
    return times


def _status_kib(field: str, status: Path = Path('/proc/self/status')) -> int:
    for line in status.read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_increase_mib(function: Callable[[], Any]) -> float | None:
    """Peak resident memory a call adds to the process, in MiB.

    Frees what the allocator holds, resets the kernel's high-water mark
    (``/proc/self/clear_refs``), runs the call and reads ``VmHWM``.

    Args:
        function: the work.

    Returns:
        the increase, or ``None`` where the kernel does not allow the reset.
    """
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
        pass
    before = _status_kib('VmRSS')
    try:
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        function()
        return None
    function()
    return (_status_kib('VmHWM') - before) / 1024


#: GNU time, whose ``%M`` is the peak RSS of the command alone.
GNU_TIME = Path('/usr/bin/time')


def run_child(command: Sequence[str], log: Path, threads: int) -> dict[str, Any]:
    """Run a command in a fresh process; its times and peak RSS.

    The peak RSS comes from GNU time's ``%M`` where it is installed, else from
    the child's ``VmHWM`` read every 0.1 s. (``wait4``'s ``ru_maxrss`` would be
    wrong: a child forked from this large process starts at this process's size.)

    Args:
        command: the command.
        log: file for its output.
        threads: OMP_NUM_THREADS of the child.

    Returns:
        wall and CPU seconds, the time on the benchmark clock and the peak RSS
        (MiB) of the command.

    Raises:
        RuntimeError: if the command fails.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    log.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log.with_suffix('.rss')
    gnu_time = GNU_TIME.exists()
    if gnu_time:
        command = [str(GNU_TIME), '-f', '%M', '-o', str(rss_file), *command]
    peak_kib = 0
    with open(log, 'w') as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if not gnu_time:
                try:
                    proc = Path(f'/proc/{child.pid}/status')
                    peak_kib = max(peak_kib, _status_kib('VmHWM', proc))
                except (OSError, KeyError):
                    pass
            time.sleep(0.1)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f'{" ".join(command)} failed; see {log}')
    if gnu_time:
        peak_kib = int(rss_file.read_text().split()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    return {
        'seconds': cpu if CLOCK['name'] == 'cpu' else wall,
        'wall_seconds': wall,
        'cpu_seconds': cpu,
        'peak_rss_mib': peak_kib / 1024,
        'rss_source': 'GNU time %M' if gnu_time else 'VmHWM polled every 0.1 s',
    }


def specdm_command() -> list[str]:
    """The ``specdm`` command of this environment."""
    script = Path(sys.executable).with_name('specdm')
    if script.exists():
        return [str(script)]
    return [sys.executable, '-c', 'from torchgeo_specdm.cli import main; main()']


def provenance() -> dict[str, Any]:
    """The commit of the imported package and its files that differ from it."""
    root = Path(torchgeo_specdm.__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ['git', *args], check=False, cwd=root, capture_output=True, text=True
        ).stdout.strip()

    return {
        'commit': git('rev-parse', 'HEAD'),
        'modified_package_files': git(
            'status', '--porcelain', '--', 'torchgeo_specdm'
        ).splitlines(),
    }
