"""Shared pieces of the benchmark scripts."""

import os
import platform
from typing import Any

import torch

from torchgeo_specdm.datamodules.registry import build_datamodule

#: Datamodule settings of the CPU benchmarks, per dataset family.
BENCHMARK_DATA: dict[str, dict[str, Any]] = {
    'oscd': {'patch_size': 64, 'patches_per_epoch': 256},
    'simulated-segmentation': {'num_train': 512, 'num_val': 64},
    'simulated-change': {'num_train': 512, 'num_val': 64},
    'segmunich': {},
    'salinas-a': {
        'patch_size': 16,
        'patches_per_epoch': 512,
        'split_method': 'stratified_blocks',
    },
}

#: Dataset families the VAE benchmarks train on.
VAE_DATASETS = ('oscd', 'simulated-segmentation', 'simulated-change', 'salinas-a')


def benchmark_datamodule(name: str, root: str | None, batch_size: int = 16) -> Any:
    """The datamodule a benchmark trains on.

    Args:
        name: dataset family.
        root: dataset root for the real datasets.
        batch_size: mini-batch size.

    Returns:
        the datamodule.
    """
    return build_datamodule(name, root, batch_size=batch_size, **BENCHMARK_DATA[name])


def machine() -> str:
    """The machine, for result files."""
    threads = torch.get_num_threads()
    return (
        f'{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, '
        f'{threads} thread{"s" if threads > 1 else ""}'
    )
