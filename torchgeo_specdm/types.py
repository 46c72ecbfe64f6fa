"""Type aliases shared across the package."""

import os
from typing import Literal

from torch import Tensor

#: A file system path.
Path = str | os.PathLike[str]

#: A sample or batch: a dict of tensors, as TorchGeo datasets return.
Sample = dict[str, Tensor]

#: SpecDM's two-stream VAE, or the paper's single-stream LDM baseline.
Architecture = Literal['two_stream', 'single_stream']
