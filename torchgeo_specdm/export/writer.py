"""DatasetWriter: writes a generated-dataset folder, resumably and atomically."""

import contextlib
import json
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from torch import Tensor

from ..datasets.manifest import (
    CONFIG_NAME,
    EXTRA_KEYS,
    FORMAT,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    PARTS_DIR,
    PATH_KEYS,
    check_header,
    read_json,
    validate,
)
from ..datasets.validation import (
    InvalidInputError,
    check_bands,
    check_finite,
    check_labels,
    check_same_size,
)
from ..types import Path
from .atomic import HOST, TEMP_RE, atomic_path, fsync_dir, write_json
from .manifest import differences, manifest_header

_PART_RE = re.compile(r'^(?P<id>\d+)\.json$')


class DatasetWriter:
    """Writer of a generated-dataset folder.

    Layout of the folder ``root``:

    * ``manifest.json``: written last by :meth:`finalize`, atomically
    * ``images/000000.tif`` (segmentation) or ``images1/``, ``images2/`` (change):
      C-band float32 GeoTIFF in native units, no CRS, identity transform
    * ``masks/000000.tif``: uint8 single-band GeoTIFF of class indices (change: 0/1)
    * ``.parts/000000.json``: per-sample record, written after the sample's files;
      ``.parts/config.json``: the configuration of the run

    Every file is written to a hidden temporary name in its folder and renamed into
    place, so a killed run leaves no partial sample: :meth:`completed` lists the
    finished ones and a rerun skips them. Several processes (one per device) may
    write disjoint sample indices into the same folder at once.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        root: Path,
        task: Literal['segmentation', 'change'],
        bands: Sequence[str],
        num_classes: int,
        class_names: Sequence[str],
        generator: dict[str, Any],
    ) -> None:
        """Initialize a new DatasetWriter instance.

        Creates the folders, removes temporary files left by a killed run and
        records the configuration, or checks it against the one already recorded.

        Args:
            root: output folder (the ``--out`` of ``specdm sample``).
            task: 'segmentation' or 'change' (then ``num_classes`` must be 2).
            bands: band names of the images, in file order.
            num_classes: number of mask classes (at most 256).
            class_names: name of each class, in label order.
            generator: generation settings: ``checkpoint_sha256``, ``sampler``,
                ``steps``, ``guidance_scale``, ``request``, ``seed``,
                ``package_version`` and any extra JSON-serialisable keys.

        Raises:
            InvalidInputError: if an argument is invalid, or ``root`` holds a
                dataset generated with a different configuration.
        """
        self.root = os.fspath(root)
        header: dict[str, Any] = {
            'format': FORMAT,
            'task': task,
            'bands': list(bands),
            'num_classes': num_classes,
            'class_names': list(class_names),
            'image_dtype': 'float32',
            'generator': generator,
        }
        try:
            header = json.loads(json.dumps(header, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise InvalidInputError(
                f'generator: cannot be stored as JSON ({error}). Pass only strings, '
                'finite numbers, booleans, None, lists and dicts.'
            ) from None
        schema = MANIFEST_SCHEMA['properties']
        for key, value in header.items():
            validate(value, schema[key], 'DatasetWriter arguments', f'$.{key}')
        if task == 'change' and num_classes != 2:
            raise InvalidInputError(
                f'num_classes={num_classes}: change detection masks are binary '
                '(0: no change, 1: change). Pass num_classes=2.'
            )
        check_header(header, 'DatasetWriter arguments')
        self.header = header
        self.task = task
        self.bands = tuple(bands)
        self.num_classes = num_classes
        self.class_names = tuple(class_names)
        self.generator = header['generator']
        self.image_dirs = (
            ('images',) if task == 'segmentation' else ('images1', 'images2')
        )
        self.parts_dir = os.path.join(self.root, PARTS_DIR)

        self._check_config()
        for folder in (*self.image_dirs, 'masks', PARTS_DIR):
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        config = os.path.join(self.parts_dir, CONFIG_NAME)
        if not os.path.isfile(config):
            write_json(config, header)
        self.cleanup()

    def _check_config(self) -> None:
        """Refuse a folder that holds a dataset of another configuration.

        Raises:
            InvalidInputError: if the recorded configuration or manifest differs.
        """
        for path in (
            os.path.join(self.parts_dir, CONFIG_NAME),
            os.path.join(self.root, MANIFEST_NAME),
        ):
            if not os.path.isfile(path):
                continue
            try:
                stored = read_json(path)
            except InvalidInputError:
                raise InvalidInputError(
                    f'{path}: unreadable, so this folder cannot be resumed safely. '
                    f'Pick a new --out folder, or delete {self.root} to start over.'
                ) from None
            if not isinstance(stored, dict):
                stored = {'<document>': stored}
            lines = differences(manifest_header(stored), self.header)
            if lines:
                shown = '; '.join(lines[:5]) + ('; ...' if len(lines) > 5 else '')
                raise InvalidInputError(
                    f'{self.root}: holds a generated dataset with a different '
                    f'configuration ({path}: {shown}). Pick a new --out folder, or '
                    f'delete {self.root} to start over.'
                )

    def _folders(self) -> list[str]:
        """Return the folders the writer writes to.

        Returns:
            the root, the image and mask folders and the parts folder.
        """
        names = ('', *self.image_dirs, 'masks', PARTS_DIR)
        return [os.path.join(self.root, name) for name in names]

    def cleanup(self) -> list[str]:
        """Remove temporary files left by a killed run.

        Removes the temporary files of this process and of dead processes on this
        host. Those of live processes (another rank writing into the same folder)
        are kept, as are those of other hosts, unless older than a day.

        Returns:
            the removed files.
        """
        removed = []
        for folder in self._folders():
            if not os.path.isdir(folder):
                continue
            for entry in os.scandir(folder):
                match = TEMP_RE.match(entry.name)
                if match is None or not entry.is_file(follow_symlinks=False):
                    continue
                if self._is_stale(match, entry):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(entry.path)
                        removed.append(entry.path)
        return removed

    @staticmethod
    def _is_stale(match: re.Match[str], entry: os.DirEntry[str]) -> bool:
        """Tell whether a temporary file was left by a process that is gone.

        Args:
            match: match of :data:`TEMP_RE` on the file name.
            entry: the file.

        Returns:
            True if the file can be removed.
        """
        pid, host = int(match['pid']), match['host']
        if (host is not None and host != HOST) or os.name == 'nt':
            # No way to probe the process: only remove files left a day ago.
            try:
                return time.time() - os.path.getmtime(entry.path) > 86400
            except OSError:
                return False
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, OverflowError):
            return True
        except OSError:
            return False  # alive, owned by another user
        return False

    def _record_path(self, index: int) -> str:
        """Return the path of a sample's part record.

        Args:
            index: sample index.

        Returns:
            the path.
        """
        return os.path.join(self.parts_dir, f'{index:06d}.json')

    def _read_record(self, index: int) -> dict[str, Any] | None:
        """Read a finished sample's part record.

        Args:
            index: sample index.

        Returns:
            the record, or None if the record is missing, unreadable or names a
            missing file.
        """
        try:
            record = read_json(self._record_path(index))
        except (OSError, InvalidInputError):
            return None
        if not isinstance(record, dict) or record.get('id') != index:
            return None
        for key in PATH_KEYS:
            if key in record and not os.path.isfile(
                os.path.join(self.root, record[key])
            ):
                return None
        required = ('mask', 'image') if self.task == 'segmentation' else PATH_KEYS[1:]
        if not all(key in record for key in required):
            return None
        return record

    def _records(self) -> dict[int, dict[str, Any]]:
        """Read every finished sample's part record.

        Returns:
            the records, by sample index.
        """
        records: dict[int, dict[str, Any]] = {}
        if not os.path.isdir(self.parts_dir):
            return records
        for entry in os.scandir(self.parts_dir):
            match = _PART_RE.match(entry.name)
            if match is None:
                continue
            index = int(match['id'])
            record = self._read_record(index)
            if record is not None:
                records[index] = record
        return records

    def completed(self) -> set[int]:
        """Return the indices of the finished samples.

        A sample is finished when its part record exists and so do the files it
        names.

        Returns:
            the finished sample indices.
        """
        return set(self._records())

    def _write_tiff(self, path: str, array: np.ndarray) -> None:
        """Write a [C, H, W] array as a GeoTIFF, atomically.

        Args:
            path: final path of the file.
            array: the bands.
        """
        count, height, width = array.shape
        floating = array.dtype == np.float32
        profile: dict[str, Any] = {
            'driver': 'GTiff',
            'dtype': 'float32' if floating else 'uint8',
            'count': count,
            'height': height,
            'width': width,
            'transform': Affine.identity(),
            'compress': 'deflate',
            'predictor': 3 if floating else 2,
            'interleave': 'band',
        }
        with atomic_path(path) as temp, warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            with rasterio.open(temp, 'w', **profile) as dst:
                dst.write(array)

    @staticmethod
    def _extra_fields(index: int, extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check a sample's optional fields against the schema.

        Args:
            index: sample index.
            extra: the fields.

        Returns:
            the fields, as JSON data.

        Raises:
            InvalidInputError: if they cannot be stored or break the schema.
        """
        if not extra:
            return {}
        unknown = sorted(set(extra) - set(EXTRA_KEYS))
        if unknown:
            raise InvalidInputError(
                f'extra: unknown fields {unknown} for sample {index}. Pass only '
                f'{", ".join(EXTRA_KEYS)}.'
            )
        try:
            fields = json.loads(json.dumps(dict(extra), allow_nan=False))
        except (TypeError, ValueError) as error:
            raise InvalidInputError(
                f'extra: cannot be stored as JSON ({error}). Pass only strings, '
                'finite numbers, booleans, None, lists and dicts.'
            ) from None
        item = {'id': index, 'mask': 'm', 'seed': 0, 'class_fractions': [0, 0]}
        validate(
            {**item, **fields},
            MANIFEST_SCHEMA['properties']['samples']['items'],
            'DatasetWriter.write arguments',
            f'$.samples[{index}]',
        )
        return dict(fields)

    def write(
        self,
        index: int,
        image: Tensor | np.ndarray,
        mask: Tensor | np.ndarray,
        seed: int,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write one sample: its files, then its part record.

        An existing sample of the same index is overwritten; call :meth:`completed`
        first to skip finished ones.

        Args:
            index: sample index (>= 0); names the files (``000042.tif``).
            image: [C, H, W] image (segmentation) or [2, C, H, W] image pair
                (change), in native units.
            mask: [H, W] or [1, H, W] class indices (change: 0/1).
            seed: seed the sample was generated from.
            extra: request fields of a conditional run: ``target``,
                ``meets_request`` and ``attempts``, and ``refined_share`` of a
                refined mask (see :data:`MANIFEST_SCHEMA`).

        Returns:
            the sample's record, as it will appear in the manifest.

        Raises:
            InvalidInputError: if an input has the wrong shape, band count or size,
                holds NaN or Inf values, or labels outside the classes, or
                ``extra`` breaks the schema.
        """
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise InvalidInputError(
                f'index={index!r}: pass the non-negative integer index of the sample.'
            )
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise InvalidInputError(f'seed={seed!r}: pass the integer sample seed.')
        source = f'sample {index}'
        fields = self._extra_fields(index, extra)
        image_t = torch.as_tensor(image).detach().cpu().to(torch.float32)
        mask_t = torch.as_tensor(mask).detach().cpu()
        want = '[C, H, W]' if self.task == 'segmentation' else '[2, C, H, W]'
        if image_t.ndim != len(want.split(',')) or (
            self.task == 'change' and image_t.shape[0] != 2
        ):
            raise InvalidInputError(
                f'{source} image: expected a {self.task} image of shape {want}, got '
                f'{tuple(image_t.shape)}. Pass one sample at a time, not a batch.'
            )
        if mask_t.ndim == 3 and mask_t.shape[0] == 1:
            mask_t = mask_t[0]
        if mask_t.ndim != 2:
            raise InvalidInputError(
                f'{source} mask: expected shape [H, W] or [1, H, W], got '
                f'{tuple(mask_t.shape)}. Pass class indices, not per-class scores.'
            )
        if mask_t.is_floating_point():
            check_finite(mask_t, f'{source} mask')
            if not bool((mask_t == mask_t.round()).all()):
                raise InvalidInputError(
                    f'{source} mask: holds non-integer values. Pass class indices '
                    '(e.g. the argmax over the class scores).'
                )
        mask_t = mask_t.to(torch.int64)
        check_bands(image_t, len(self.bands), f'{source} image', axis=-3)
        check_finite(image_t, f'{source} image')
        check_labels(mask_t, self.num_classes, f'{source} mask')
        check_same_size(image_t, mask_t, f'{source} image', f'{source} mask')

        name = f'{index:06d}.tif'
        record: dict[str, Any] = {'id': index}
        images = np.ascontiguousarray(image_t.numpy())
        stack = [images] if self.task == 'segmentation' else [images[0], images[1]]
        keys = ('image',) if self.task == 'segmentation' else ('image1', 'image2')
        for key, folder, array in zip(keys, self.image_dirs, stack, strict=True):
            relative = f'{folder}/{name}'
            self._write_tiff(os.path.join(self.root, relative), array)
            record[key] = relative
        record['mask'] = f'masks/{name}'
        mask_np = np.ascontiguousarray(mask_t.numpy().astype(np.uint8))
        self._write_tiff(os.path.join(self.root, record['mask']), mask_np[None])
        counts = np.bincount(mask_np.ravel(), minlength=self.num_classes)
        record['seed'] = int(seed)
        record['class_fractions'] = (counts / max(mask_np.size, 1)).tolist()
        record.update(fields)
        for folder in (*self.image_dirs, 'masks'):
            fsync_dir(os.path.join(self.root, folder))
        write_json(self._record_path(index), record)
        return record

    def finalize(self, num_samples: int | None = None) -> dict[str, Any]:
        """Write ``manifest.json`` from the finished samples' part records.

        Alignment scores of an earlier manifest of this folder are kept.

        Args:
            num_samples: if given, samples 0 to ``num_samples - 1`` must all be
                finished and only they enter the manifest; otherwise every
                finished sample does.

        Returns:
            the manifest.

        Raises:
            InvalidInputError: if samples are missing or none is finished.
        """
        records = self._records()
        if num_samples is not None:
            missing = sorted(set(range(num_samples)) - set(records))
            if missing:
                shown = ', '.join(map(str, missing[:10]))
                more = f' and {len(missing) - 10} more' if len(missing) > 10 else ''
                raise InvalidInputError(
                    f'{self.root}: samples {shown}{more} of {num_samples} are not '
                    'finished. Rerun the same `specdm sample` command to generate '
                    'them (finished samples are skipped).'
                )
            records = {i: r for i, r in records.items() if i < num_samples}
        if not records:
            raise InvalidInputError(
                f'{self.root}: no finished samples to list in the manifest. Run '
                '`specdm sample` with this --out first.'
            )
        path = os.path.join(self.root, MANIFEST_NAME)
        alignment: dict[int, Any] = {}
        if os.path.isfile(path):
            with contextlib.suppress(InvalidInputError, TypeError, KeyError):
                old = read_json(path)
                alignment = {
                    s['id']: s['alignment'] for s in old['samples'] if 'alignment' in s
                }
        samples = []
        for index in sorted(records):
            sample = dict(records[index])
            if index in alignment:
                sample['alignment'] = alignment[index]
            samples.append(sample)
        manifest = {**self.header, 'samples': samples}
        validate(manifest, MANIFEST_SCHEMA, path, '$')
        write_json(path, manifest)
        return manifest
