#!/usr/bin/env python3
"""Write a small fake SegMunich in the release layout (tifffile, H x W x C float32)."""

import os
import shutil

import numpy as np
import tifffile

SIZE = 32
NUM_BANDS = 10
RAW_CODES = (0, 5, 11, 12, 13, 14, 21, 22, 23, 31, 32, 33, 41)
SPLITS = {'train': ['1', '2', '3', '4', '5', '6'], 'val': ['7', '8'], 'test': ['9']}


def main() -> None:
    rng = np.random.default_rng(0)
    for folder in ('train', 'val', 'test', 'dataset'):
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs('dataset')
    for split, names in SPLITS.items():
        os.makedirs(os.path.join(split, 'img'))
        os.makedirs(os.path.join(split, 'label'))
        for name in names:
            image = rng.uniform(100, 4000, (SIZE, SIZE, NUM_BANDS)).round()
            tifffile.imwrite(
                os.path.join(split, 'img', f'{name}.tif'), image.astype(np.float32)
            )
            label = rng.choice(RAW_CODES, (SIZE, SIZE)).astype(np.uint8)
            tifffile.imwrite(os.path.join(split, 'label', f'{name}.tif'), label)
        with open(os.path.join('dataset', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')


if __name__ == '__main__':
    main()
