"""Manifest updates: alignment scores and the header comparison that guards a resume."""

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..datasets.manifest import MANIFEST_NAME, MANIFEST_SCHEMA, load_manifest, validate
from ..datasets.validation import InvalidInputError
from ..types import Path
from .atomic import write_json


def manifest_header(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Return the configuration part of a manifest: everything but the samples.

    Args:
        manifest: manifest or header.

    Returns:
        the header.
    """
    return {key: value for key, value in manifest.items() if key != 'samples'}


def differences(old: Any, new: Any, where: str = '$') -> list[str]:
    """List the fields in which two JSON documents differ.

    Args:
        old: the stored document.
        new: the requested document.
        where: JSON path of the documents.

    Returns:
        one ``path: old -> new`` line per differing leaf.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new)):
            lines += differences(
                old.get(key, '<absent>'), new.get(key, '<absent>'), f'{where}.{key}'
            )
        return lines
    if old != new:
        return [f'{where}: {old!r} in the folder, {new!r} now']
    return []


def update_alignment(root: Path, scores: Mapping[int, float]) -> dict[str, Any]:
    """Store image-mask alignment scores in a generated-dataset manifest.

    The manifest is read and checked with :func:`load_manifest`, the scores are set
    on the samples they name (other samples keep theirs) and the manifest is
    rewritten atomically.

    Args:
        root: the generated-dataset folder.
        scores: alignment score of each scored sample, by sample id.

    Returns:
        the updated manifest.

    Raises:
        InvalidInputError: if the manifest is invalid, a score names an unknown
            sample or is not a finite number.

    .. versionadded:: 0.1
    """
    manifest = load_manifest(root)
    path = os.path.join(os.fspath(root), MANIFEST_NAME)
    by_id = {sample['id']: sample for sample in manifest['samples']}
    for index, score in scores.items():
        if index not in by_id:
            raise InvalidInputError(
                f'scores: sample id {index} is not in {path}. Score the samples '
                'that the manifest lists.'
            )
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float | np.floating | np.integer)
            or not math.isfinite(score)
        ):
            raise InvalidInputError(
                f'scores[{index}] = {score!r} is not a finite number. Pass one '
                'finite score per sample.'
            )
        by_id[index]['alignment'] = float(score)
    validate(manifest, MANIFEST_SCHEMA, path, '$')
    write_json(path, manifest)
    return manifest
