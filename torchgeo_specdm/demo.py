"""The ``specdm demo`` workflow on the embedded scene simulator."""

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from .datasets import SimulatedChange, SimulatedSegmentation
from .types import Path


def run_demo(out: Path, num_samples: int, size: int, seed: int) -> list[str]:
    """Simulate segmentation scenes and change pairs, and plot each one.

    Args:
        out: output folder; created if needed.
        num_samples: samples per family.
        size: scene side in pixels.
        seed: simulator seed.

    Returns:
        the paths of the PNGs written.
    """
    os.makedirs(out, exist_ok=True)
    families: dict[str, SimulatedSegmentation | SimulatedChange] = {
        'segmentation': SimulatedSegmentation(num_samples, size, seed),
        'change': SimulatedChange(num_samples, size, seed),
    }
    written = []
    for name, dataset in families.items():
        for index in tqdm(range(len(dataset)), desc=f'simulating {name}'):
            figure = dataset.plot(dataset[index], suptitle=f'{name} sample {index}')
            path = os.path.join(out, f'{name}_{index:03d}.png')
            figure.savefig(path, dpi=80, bbox_inches='tight')
            plt.close(figure)
            written.append(path)
    print(f'Wrote {len(written)} plots to {os.path.abspath(out)}')
    return written
