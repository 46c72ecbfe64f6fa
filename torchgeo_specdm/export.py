"""Generated-dataset folder: the writer, its manifest schema and the manifest loader."""

import contextlib
import json
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Literal

import jsonschema
import numpy as np
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from torch import Tensor

from .datasets.validation import (
    InvalidInputError,
    check_bands,
    check_finite,
    check_labels,
    check_same_size,
)
from .types import Path

#: Format tag of the generated-dataset folder this version writes and reads.
FORMAT = 'specdm-synthetic/1'

#: Name of the manifest file inside the folder.
MANIFEST_NAME = 'manifest.json'

#: Folder of the per-sample records (and of the configuration record).
PARTS_DIR = '.parts'

#: Configuration record inside :data:`PARTS_DIR`: the manifest header of the run.
CONFIG_NAME = 'config.json'

_FILE_PROPERTY = {'type': 'string', 'minLength': 1}

_FRACTION = {'type': 'number', 'minimum': 0, 'maximum': 1}
_FRACTION_OR_NULL = {'type': ['number', 'null'], 'minimum': 0, 'maximum': 1}

# Marks a field not allowed in a context (jsonschema loses the path of ``False``).
_FORBIDDEN: dict[str, Any] = {'not': {}}

#: JSON Schema (draft 2020-12) of ``manifest.json``.
MANIFEST_SCHEMA: dict[str, Any] = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    '$id': 'https://torchgeo-specdm/schemas/specdm-synthetic-1.json',
    'title': 'SpecDM generated-dataset manifest',
    'type': 'object',
    'required': [
        'format',
        'task',
        'bands',
        'num_classes',
        'class_names',
        'image_dtype',
        'generator',
        'samples',
    ],
    'additionalProperties': False,
    'properties': {
        'format': {'const': FORMAT},
        'task': {'enum': ['segmentation', 'change']},
        'bands': {
            'type': 'array',
            'items': {'type': 'string', 'minLength': 1},
            'minItems': 1,
            'uniqueItems': True,
        },
        'num_classes': {'type': 'integer', 'minimum': 2, 'maximum': 256},
        'class_names': {
            'type': 'array',
            'items': {'type': 'string'},
            'minItems': 2,
            'maxItems': 256,
        },
        'image_dtype': {'const': 'float32'},
        'generator': {
            'type': 'object',
            'required': [
                'checkpoint_sha256',
                'sampler',
                'steps',
                'guidance_scale',
                'request',
                'seed',
                'package_version',
            ],
            'additionalProperties': True,
            'properties': {
                'checkpoint_sha256': {'type': 'string', 'pattern': '^[0-9a-f]{64}$'},
                'sampler': {'type': 'string', 'minLength': 1},
                'steps': {'type': 'integer', 'minimum': 1},
                'guidance_scale': {'type': 'number', 'minimum': 0},
                'request': {
                    'type': ['object', 'null'],
                    'properties': {
                        'condition': {'type': 'string'},
                        'classes': {
                            'type': ['array', 'null'],
                            'items': {'type': 'string'},
                        },
                        'min_fraction': _FRACTION_OR_NULL,
                        'change_fraction': {
                            'type': ['array', 'null'],
                            'items': _FRACTION,
                            'minItems': 2,
                            'maxItems': 2,
                        },
                        'rebalance': {'type': 'boolean'},
                        'on_miss': {'enum': ['flag', 'redraw']},
                        'max_attempts': {'type': 'integer', 'minimum': 1},
                    },
                },
                'seed': {'type': 'integer'},
                'package_version': {'type': 'string', 'minLength': 1},
            },
        },
        'samples': {
            'type': 'array',
            'minItems': 1,
            'items': {
                'type': 'object',
                'required': ['id', 'mask', 'seed', 'class_fractions'],
                'additionalProperties': False,
                'properties': {
                    'id': {'type': 'integer', 'minimum': 0},
                    'image': _FILE_PROPERTY,
                    'image1': _FILE_PROPERTY,
                    'image2': _FILE_PROPERTY,
                    'mask': _FILE_PROPERTY,
                    'seed': {'type': 'integer'},
                    'class_fractions': {
                        'type': 'array',
                        'items': {'type': 'number', 'minimum': 0, 'maximum': 1},
                        'minItems': 2,
                    },
                    'alignment': {'type': ['number', 'null']},
                    'target': {
                        'type': 'object',
                        'additionalProperties': False,
                        'properties': {
                            'classes': {'type': 'array', 'items': {'type': 'string'}},
                            'min_fraction': _FRACTION,
                            'change_fraction': {
                                'type': 'array',
                                'items': _FRACTION,
                                'minItems': 2,
                                'maxItems': 2,
                            },
                        },
                    },
                    'meets_request': {'type': 'boolean'},
                    'attempts': {'type': 'integer', 'minimum': 1},
                },
            },
        },
    },
    'if': {'properties': {'task': {'const': 'change'}}, 'required': ['task']},
    'then': {
        'properties': {
            'num_classes': {'const': 2},
            'samples': {
                'items': {
                    'required': ['image1', 'image2'],
                    'properties': {'image': _FORBIDDEN},
                }
            },
        }
    },
    'else': {
        'properties': {
            'samples': {
                'items': {
                    'required': ['image'],
                    'properties': {'image1': _FORBIDDEN, 'image2': _FORBIDDEN},
                }
            }
        }
    },
}

#: Keys of a sample record that describe a conditional run's request.
_REQUEST_KEYS = ('target', 'meets_request', 'attempts')

#: Keys of a sample record that hold file paths, in writing order.
_PATH_KEYS = ('image', 'image1', 'image2', 'mask')

_TEMP_RE = re.compile(r'^\..+\.tmp-(?P<pid>\d+)(?:@(?P<host>.*))?$')
_PART_RE = re.compile(r'^(?P<id>\d+)\.json$')

_HOST = socket.gethostname()

_FIX_REBUILD = (
    'Rerun `specdm sample` with the same --out to rebuild it from the finished '
    'samples, or restore the file.'
)


def _temp_name(path: str) -> str:
    """Return the temporary name a file is written under before its rename.

    Args:
        path: final path of the file.

    Returns:
        a hidden name in the same folder, tagged with this process and host.
    """
    folder, name = os.path.split(path)
    return os.path.join(folder, f'.{name}.tmp-{os.getpid()}@{_HOST}')


def _fsync_file(path: str) -> None:
    """Flush a closed file to disk.

    Args:
        path: file to flush.
    """
    with open(path, 'r+b') as f:
        os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    """Flush a folder's entries (renames) to disk, where the platform allows it.

    Args:
        path: folder to flush.
    """
    if not hasattr(os, 'O_DIRECTORY'):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path; on success flush it and rename it onto ``path``.

    On failure the temporary file is removed and ``path`` is left as it was.

    Args:
        path: final path of the file.

    Yields:
        the temporary path to write.
    """
    temp = _temp_name(path)
    try:
        yield temp
        _fsync_file(temp)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise


def _write_json(path: str, data: Any) -> None:
    """Write JSON atomically: temporary file, fsync, rename, folder fsync.

    Args:
        path: final path of the file.
        data: JSON-serialisable data.
    """
    text = json.dumps(data, indent=1, allow_nan=False) + '\n'
    with _atomic_path(path) as temp, open(temp, 'w', encoding='utf-8') as f:
        f.write(text)
    _fsync_dir(os.path.dirname(path) or '.')


def _reject_constant(name: str) -> Any:
    """Refuse the non-standard JSON constants NaN, Infinity and -Infinity.

    Args:
        name: the constant found.

    Raises:
        ValueError: always.
    """
    raise ValueError(f'non-standard JSON constant {name}')


def _read_json(path: str) -> Any:
    """Read a strict JSON file.

    Args:
        path: file to read.

    Returns:
        the parsed data.

    Raises:
        InvalidInputError: if the file is not valid JSON.
    """
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInputError(
            f'{path}: not valid JSON ({error}). The file was truncated or edited by '
            f'hand. {_FIX_REBUILD}'
        ) from None


def _validate(data: Any, schema: Mapping[str, Any], source: str, prefix: str) -> None:
    """Validate data against a JSON Schema, raising the most relevant error.

    Args:
        data: data to validate.
        schema: JSON Schema (draft 2020-12).
        source: file or argument the data came from, for the message.
        prefix: JSON path of ``data`` inside its document, e.g. ``$`` or
            ``$.generator``.

    Raises:
        InvalidInputError: if the data does not match the schema.
    """
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    where = prefix + error.json_path[1:]
    message = error.message
    if error.validator == 'not' and error.validator_value == {}:
        message = 'the field is not allowed here (segmentation samples have '
        message += '"image", change samples "image1" and "image2")'
    raise InvalidInputError(
        f'{source}: field {where} is invalid: {message}. Fix that field '
        f'(the {FORMAT} schema is torchgeo_specdm.export.MANIFEST_SCHEMA).'
    )


def _check_header(header: Mapping[str, Any], source: str) -> None:
    """Check the manifest fields that the schema cannot relate to each other.

    Args:
        header: manifest (or manifest header without samples).
        source: file or argument the header came from, for the message.

    Raises:
        InvalidInputError: if ``class_names`` does not name ``num_classes`` classes.
    """
    names, num_classes = header['class_names'], header['num_classes']
    if len(names) != num_classes:
        raise InvalidInputError(
            f'{source}: field $.class_names names {len(names)} classes but '
            f'$.num_classes is {num_classes}. Give one name per class.'
        )


def _check_relative(relative: str, source: str, where: str) -> None:
    """Check that a manifest path is relative and cannot leave the folder.

    Args:
        relative: the path as written in the manifest.
        source: the manifest file, for the message.
        where: JSON path of the field, for the message.

    Raises:
        InvalidInputError: if the path is absolute or holds ``..``.
    """
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if (
        posix.is_absolute()
        or windows.drive
        or windows.root
        or '..' in posix.parts
        or '..' in windows.parts
        or relative in {'', '.'}
    ):
        raise InvalidInputError(
            f'{source}: field {where} = {relative!r} leaves the dataset folder. '
            'Paths must be relative to the folder of manifest.json and stay inside '
            "it (no absolute paths, no '..'): fix the path or move the file into "
            'the folder.'
        )


def _manifest_header(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Return the configuration part of a manifest: everything but the samples.

    Args:
        manifest: manifest or header.

    Returns:
        the header.
    """
    return {key: value for key, value in manifest.items() if key != 'samples'}


def _differences(old: Any, new: Any, where: str = '$') -> list[str]:
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
            lines += _differences(
                old.get(key, '<absent>'), new.get(key, '<absent>'), f'{where}.{key}'
            )
        return lines
    if old != new:
        return [f'{where}: {old!r} in the folder, {new!r} now']
    return []


def load_manifest(root: Path) -> dict[str, Any]:
    """Read and check the manifest of a generated-dataset folder.

    Checks the manifest against :data:`MANIFEST_SCHEMA`, that ``class_names`` and
    every ``class_fractions`` hold ``num_classes`` entries, that sample ids are
    unique, and that every file path is relative, stays inside ``root`` (symbolic
    links included) and names an existing file.

    Args:
        root: the generated-dataset folder.

    Returns:
        the manifest, as parsed from JSON.

    Raises:
        InvalidInputError: if the manifest is missing, not JSON, breaks the schema,
            names a path outside ``root`` or a missing file.

    .. versionadded:: 0.1
    """
    root = os.fspath(root)
    path = os.path.join(root, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise InvalidInputError(
            f'{path}: manifest not found. Run `specdm sample` to create it or check '
            'the folder (it must be the --out folder of `specdm sample`).'
        )
    manifest = _read_json(path)
    _validate(manifest, MANIFEST_SCHEMA, path, '$')
    _check_header(manifest, path)

    real_root = os.path.realpath(root)
    real_dirs: dict[str, str] = {}
    seen: set[int] = set()
    for number, sample in enumerate(manifest['samples']):
        if sample['id'] in seen:
            raise InvalidInputError(
                f'{path}: field $.samples[{number}].id = {sample["id"]} repeats an '
                'earlier sample id. Give every sample its own id.'
            )
        seen.add(sample['id'])
        fractions = sample['class_fractions']
        if len(fractions) != manifest['num_classes']:
            raise InvalidInputError(
                f'{path}: field $.samples[{number}].class_fractions has '
                f'{len(fractions)} entries but $.num_classes is '
                f'{manifest["num_classes"]}. Give one fraction per class.'
            )
        for key in _PATH_KEYS:
            if key not in sample:
                continue
            relative, where = sample[key], f'$.samples[{number}].{key}'
            _check_relative(relative, path, where)
            folder, name = os.path.split(relative)
            if folder not in real_dirs:
                real_dirs[folder] = os.path.realpath(os.path.join(root, folder))
            target = os.path.join(real_dirs[folder], name)
            if os.path.islink(target):
                target = os.path.realpath(target)
            if os.path.commonpath([real_root, target]) != real_root:
                raise InvalidInputError(
                    f'{path}: field {where} = {relative!r} resolves (through a '
                    f'symbolic link) to {target}, outside the dataset folder. Copy '
                    'the file into the folder instead of linking it.'
                )
            if not os.path.isfile(target):
                raise InvalidInputError(
                    f'{path}: field {where} names {os.path.join(root, relative)}, '
                    'which does not exist. The folder is incomplete: copy the whole '
                    'folder, or rerun `specdm sample` with the same --out to '
                    'regenerate the missing samples.'
                )
    return manifest


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
    _validate(manifest, MANIFEST_SCHEMA, path, '$')
    _write_json(path, manifest)
    return manifest


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
            _validate(value, schema[key], 'DatasetWriter arguments', f'$.{key}')
        if task == 'change' and num_classes != 2:
            raise InvalidInputError(
                f'num_classes={num_classes}: change detection masks are binary '
                '(0: no change, 1: change). Pass num_classes=2.'
            )
        _check_header(header, 'DatasetWriter arguments')
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
            _write_json(config, header)
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
                stored = _read_json(path)
            except InvalidInputError:
                raise InvalidInputError(
                    f'{path}: unreadable, so this folder cannot be resumed safely. '
                    f'Pick a new --out folder, or delete {self.root} to start over.'
                ) from None
            if not isinstance(stored, dict):
                stored = {'<document>': stored}
            lines = _differences(_manifest_header(stored), self.header)
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
                match = _TEMP_RE.match(entry.name)
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
            match: match of :data:`_TEMP_RE` on the file name.
            entry: the file.

        Returns:
            True if the file can be removed.
        """
        pid, host = int(match['pid']), match['host']
        if (host is not None and host != _HOST) or os.name == 'nt':
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
            record = _read_json(self._record_path(index))
        except (OSError, InvalidInputError):
            return None
        if not isinstance(record, dict) or record.get('id') != index:
            return None
        for key in _PATH_KEYS:
            if key in record and not os.path.isfile(
                os.path.join(self.root, record[key])
            ):
                return None
        required = ('mask', 'image') if self.task == 'segmentation' else _PATH_KEYS[1:]
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
        with _atomic_path(path) as temp, warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            with rasterio.open(temp, 'w', **profile) as dst:
                dst.write(array)

    @staticmethod
    def _extra_fields(index: int, extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check a sample's request fields against the schema.

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
        unknown = sorted(set(extra) - set(_REQUEST_KEYS))
        if unknown:
            raise InvalidInputError(
                f'extra: unknown fields {unknown} for sample {index}. Pass only '
                f'{", ".join(_REQUEST_KEYS)}.'
            )
        try:
            fields = json.loads(json.dumps(dict(extra), allow_nan=False))
        except (TypeError, ValueError) as error:
            raise InvalidInputError(
                f'extra: cannot be stored as JSON ({error}). Pass only strings, '
                'finite numbers, booleans, None, lists and dicts.'
            ) from None
        item = {'id': index, 'mask': 'm', 'seed': 0, 'class_fractions': [0, 0]}
        _validate(
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
                ``meets_request`` and ``attempts`` (see :data:`MANIFEST_SCHEMA`).

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
            _fsync_dir(os.path.join(self.root, folder))
        _write_json(self._record_path(index), record)
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
                old = _read_json(path)
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
        _validate(manifest, MANIFEST_SCHEMA, path, '$')
        _write_json(path, manifest)
        return manifest
