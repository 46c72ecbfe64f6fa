"""Type aliases shared across the package."""

import os

from torch import Tensor

#: A file system path.
Path = str | os.PathLike[str]

#: A sample or batch: a dict of tensors, as TorchGeo datasets return.
Sample = dict[str, Tensor]
