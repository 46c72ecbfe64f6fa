"""Clocks, FLOP counting, the matrix rate and the machine record of benchmarks/gpu.py."""

import gc
import os
import platform
import subprocess
import sys
import time
from typing import Any

import lightning
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.flop_counter import FlopCounterMode


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def allocated_memory(device: torch.device) -> int | None:
    """Device memory held by live tensors now, after collecting garbage (None on CPU)."""
    if device.type == 'cuda':
        gc.collect()
        return int(torch.cuda.memory_allocated(device))
    return None


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak of allocated device memory."""
    if device.type == 'cuda':
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int | None:
    """Peak allocated device memory since the last reset (None on CPU)."""
    if device.type == 'cuda':
        return int(torch.cuda.max_memory_allocated(device))
    return None


class Deadline:
    """The wall-clock budget of the whole run."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.seconds = seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


class StepTimer(Callback):
    """Steady-state training throughput, peak memory and the FLOPs of one real step.

    The first ``warmup`` steps (the torch.compile step among them) are not timed;
    then training stops once ``seconds`` have passed and at least ``min_steps``
    were timed, or after ``max_steps`` timed steps. The device is synchronised at
    the start and end of the timed window only, so queued work overlaps as in any
    training run. With ``count_flops``, FlopCounterMode watches the forward and
    backward pass of the first step, on the real batch, in the trainer's precision.
    """

    def __init__(
        self,
        warmup: int,
        seconds: float,
        min_steps: int,
        max_steps: int,
        count_flops: bool,
    ) -> None:
        super().__init__()
        self.warmup = max(1, warmup)
        self.seconds = seconds
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.count_flops = count_flops
        self.counter: FlopCounterMode | None = None
        self.flops: int | None = None
        self.steps = 0
        self.first_step_seconds = 0.0
        self.window_start = 0.0
        self.window_seconds = 0.0
        self.peak: int | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        reset_peak_memory(pl_module.device)
        self.start = time.perf_counter()

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.count_flops and self.steps == 0:
            self.counter = FlopCounterMode(display=False)
            self.counter.__enter__()

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.counter is not None:
            self.counter.__exit__(None, None, None)
            self.flops = int(self.counter.get_total_flops())
            self.counter = None

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.steps += 1
        device = pl_module.device
        if self.steps == 1:
            synchronize(device)
            self.first_step_seconds = time.perf_counter() - self.start
        if self.steps == self.warmup:
            synchronize(device)
            self.window_start = time.perf_counter()
        timed = self.steps - self.warmup
        if timed > 0:
            elapsed = time.perf_counter() - self.window_start
            enough = timed >= self.min_steps and elapsed >= self.seconds
            if enough or timed >= self.max_steps:
                trainer.should_stop = True

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        synchronize(pl_module.device)
        if self.steps > self.warmup:
            self.window_seconds = time.perf_counter() - self.window_start
        self.peak = peak_memory(pl_module.device)

    def record(self, batch_size: int) -> dict[str, Any]:
        """The run's figures."""
        timed = max(0, self.steps - self.warmup)
        rate = timed / self.window_seconds if self.window_seconds else None
        return {
            'warmup_steps': self.warmup,
            'timed_steps': timed,
            'timed_seconds': self.window_seconds,
            'first_step_seconds': self.first_step_seconds,
            'steps_per_second': rate,
            'samples_per_second': None if rate is None else rate * batch_size,
            'peak_memory_bytes': self.peak,
            'flops_per_step': self.flops,
        }


def add_utilisation(record: dict[str, Any], matrix_flops: float) -> None:
    """Achieved FLOP/s and model FLOPs utilisation from the counted FLOPs."""
    flops, rate = record.get('flops_per_step'), record.get('steps_per_second')
    if flops and rate:
        record['achieved_tflops'] = flops * rate / 1e12
        record['mfu'] = flops * rate / matrix_flops


def matrix_rate(device: torch.device, size: int, repeats: int) -> dict[str, Any]:
    """The bf16 matrix-multiply rate of this device, by timing torch.matmul.

    Args:
        device: the device.
        size: side of the square matrices.
        repeats: timed products, after three warm-up ones.

    Returns:
        the size, the seconds of each product and the mean FLOP/s.
    """
    generator = torch.Generator(device=device).manual_seed(0)
    a, b = (
        torch.randn(
            size, size, device=device, dtype=torch.bfloat16, generator=generator
        )
        for _ in range(2)
    )
    for _ in range(3):
        torch.matmul(a, b)
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    flops = 2 * size**3
    mean = sum(seconds) / len(seconds)
    return {
        'size': size,
        'dtype': 'bfloat16',
        'seconds': seconds,
        'flops_per_second': flops / mean,
        'tflops': flops / mean / 1e12,
    }


def _nvidia_smi() -> dict[str, str]:
    query = 'name,driver_version,memory.total'
    try:
        line = subprocess.run(
            ['nvidia-smi', f'--query-gpu={query}', '--format=csv,noheader'],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return {}
    return dict(zip(query.split(','), (part.strip() for part in line.split(','))))


def machine(device: torch.device) -> dict[str, Any]:
    """The card, driver and software versions, for the result files."""
    import diffusers
    import torchgeo

    info: dict[str, Any] = {
        'device': device.type,
        'python': platform.python_version(),
        'torch': torch.__version__,
        'lightning': lightning.__version__,
        'diffusers': diffusers.__version__,
        'torchgeo': torchgeo.__version__,
        'cpu': platform.processor() or platform.machine(),
        'cpu_count': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'executable': sys.executable,
    }
    if device.type == 'cuda':
        smi = _nvidia_smi()
        properties = torch.cuda.get_device_properties(device)
        info |= {
            'card': torch.cuda.get_device_name(device),
            'driver': smi.get('driver_version'),
            'card_memory_bytes': int(properties.total_memory),
            'multiprocessors': properties.multi_processor_count,
            'cuda': torch.version.cuda,
            'cudnn': torch.backends.cudnn.version(),
            'cudnn_benchmark': torch.backends.cudnn.benchmark,
            'float32_matmul_precision': torch.get_float32_matmul_precision(),
        }
    else:
        info |= {'card': None, 'driver': None}
    return info
