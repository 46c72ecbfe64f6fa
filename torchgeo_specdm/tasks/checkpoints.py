"""Reading checkpoints safely: tensors and plain data only, with clear errors."""

import contextlib
import os
import pickle
import zipfile
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

from ..datasets.validation import InvalidInputError
from ..types import Path


def read_checkpoint(path: Path, map_location: str = 'cpu') -> dict[str, Any]:
    """Load a Lightning checkpoint with ``weights_only=True``.

    No code stored in the file runs: a checkpoint that needs arbitrary unpickling
    is refused.

    Args:
        path: checkpoint file.
        map_location: device to load the tensors onto.

    Returns:
        the checkpoint dictionary.

    Raises:
        InvalidInputError: if the file is missing, unreadable, holds objects other
            than tensors and plain data, or is not a Lightning checkpoint.
    """
    if not os.path.isfile(path):
        raise InvalidInputError(
            f'{path}: checkpoint not found. Pass the .ckpt file that `specdm fit` '
            'wrote (look under lightning_logs/*/checkpoints/).'
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise InvalidInputError(
            f'{path}: refused to load: the file holds objects other than tensors and '
            f'plain data, which could run code ({str(error).splitlines()[0]}). Only '
            'load checkpoints you trust, re-saved as weights.'
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise InvalidInputError(
            f'{path}: cannot read this checkpoint ({type(error).__name__}: {error}). '
            'It is truncated or not a PyTorch checkpoint.'
        ) from None
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise InvalidInputError(
            f'{path}: not a Lightning checkpoint (no state_dict). Pass a .ckpt file '
            'written by `specdm fit`.'
        )
    return checkpoint


@contextlib.contextmanager
def own_hyperparameters() -> Iterator[None]:
    """Let a task built inside another task's construction keep its own hyperparameters.

    LightningCLI hands the hyperparameters of the model it instantiates to every
    ``save_hyperparameters`` call made during that instantiation, so a VAE loaded
    while the CLI builds a LatentDiffusion task would otherwise record the
    diffusion task's settings.

    Yields:
        nothing; the block runs with no CLI-given hyperparameters.
    """
    token = _given_hyperparameters.set(None)
    try:
        yield
    finally:
        _given_hyperparameters.reset(token)
