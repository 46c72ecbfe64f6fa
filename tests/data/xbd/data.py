#!/usr/bin/env python3
"""Write a small fake xBD in its release layout: 5-class building-damage change pairs.

``<split>/images/<name>_{pre,post}_disaster.png``: RGB PNGs;
``<split>/targets/<name>_{pre,post}_disaster_target.png``: one-band PNGs. Pre-disaster
targets mark buildings with 1; post-disaster targets hold the damage class of each
building (1 no damage, 2 minor, 3 major, 4 destroyed), and some buildings appear only
after the event. torchgeo's xBD turns them into a change mask, post - pre clamped to
[0, 4], so every one of the 5 classes occurs. 32 x 32 px instead of 1024 x 1024.
"""

import os
import shutil

import numpy as np
from PIL import Image

SIZE = 32
SPLITS = {
    'train': [
        'hurricane-a_00000001',
        'hurricane-a_00000002',
        'fire-b_00000003',
        'fire-b_00000004',
        'flood-c_00000005',
    ],
    'test': ['hurricane-a_00000006', 'fire-b_00000007'],
}


def main() -> None:
    rng = np.random.default_rng(0)
    here = os.path.dirname(os.path.abspath(__file__))
    for split, names in SPLITS.items():
        shutil.rmtree(os.path.join(here, split), ignore_errors=True)
        for folder in ('images', 'targets'):
            os.makedirs(os.path.join(here, split, folder))
        for name in names:
            pre = np.zeros((SIZE, SIZE), dtype=np.uint8)
            post = np.zeros((SIZE, SIZE), dtype=np.uint8)
            for _ in range(6):
                y, x = rng.integers(0, SIZE - 6, 2)
                height, width = rng.integers(3, 7, 2)
                new = rng.random() < 0.3
                pre[y : y + height, x : x + width] = 0 if new else 1
                post[y : y + height, x : x + width] = rng.integers(1, 5)
            ground = np.array([70, 100, 60], dtype=np.float64)
            roof = np.array([180, 170, 160], dtype=np.float64)
            for target, when in ((pre, 'pre'), (post, 'post')):
                image = np.where(target[..., None] > 0, roof, ground)
                if when == 'post':
                    image = np.where(target[..., None] >= 3, ground * 0.6, image)
                image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255)
                base = f'{name}_{when}_disaster'
                Image.fromarray(image.astype(np.uint8), 'RGB').save(
                    os.path.join(here, split, 'images', f'{base}.png')
                )
                Image.fromarray(target, 'L').save(
                    os.path.join(here, split, 'targets', f'{base}_target.png')
                )


if __name__ == '__main__':
    main()
