"""Make a held-out OSCD root with a ``Test Labels`` folder from an OSCD root without one.

The shared OSCD root has labels for 10 cities, all under ``Train Labels``. This script
links the images and the labels of some cities into ``OUT`` in torchgeo's test layout
(``Onera Satellite Change Detection dataset - Test Labels/<city>/cm/cm.png``), so that
``benchmarks/downstream.py --test-root OUT`` evaluates there exactly as on the official
test release. Nothing is copied: the files are symbolic links.

By default the held-out cities are the validation cities of ``OSCDPatchDataModule``'s
split of ROOT (torchgeo's ``random_split`` with seed 0): the VAE, the diffusion model
and the downstream models train on the other cities only.

Example:
    python benchmarks/heldout_oscd.py --root ../shared/data/oscd --out outputs/oscd_heldout
"""

import argparse
import os
from pathlib import Path

from torchgeo_specdm.datamodules import OSCDPatchDataModule

IMAGES = 'Onera Satellite Change Detection dataset - Images'
TRAIN_LABELS = 'Onera Satellite Change Detection dataset - Train Labels'
TEST_LABELS = 'Onera Satellite Change Detection dataset - Test Labels'


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--root', required=True, help='OSCD root with Train Labels')
    parser.add_argument('--out', required=True, help='new root to create')
    parser.add_argument(
        '--cities', nargs='+', help='held-out cities (default: the validation cities)'
    )
    options = parser.parse_args()
    root = Path(options.root).resolve()
    cities = options.cities
    if cities is None:
        datamodule = OSCDPatchDataModule(root=str(root))
        datamodule.setup('fit')
        cities = datamodule.val_cities
    out = Path(options.out)
    for city in cities:
        label = root / TRAIN_LABELS / city
        if not label.is_dir():
            raise SystemExit(f'--cities: {city} has no labels under {label.parent}')
        for source, target in (
            (root / IMAGES / city, out / IMAGES / city),
            (label, out / TEST_LABELS / city),
        ):
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            os.symlink(source, target, target_is_directory=True)
    print(f'held-out root {out} with {", ".join(cities)}')


if __name__ == '__main__':
    main()
