"""The generated-dataset manifest: its schema, its format constants and its reader."""

import json
import os
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import jsonschema

from ..types import Path
from .validation import InvalidInputError

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
                'guide': {
                    'type': ['object', 'null'],
                    'required': ['sha256', 'path'],
                    'additionalProperties': False,
                    'properties': {
                        'sha256': {'type': 'string', 'pattern': '^[0-9a-f]{64}$'},
                        'path': {'type': 'string', 'minLength': 1},
                    },
                },
                'alignment_guidance': {'type': 'number', 'minimum': 0},
                'guidance_start': _FRACTION_OR_NULL,
                'refine': {'enum': ['ignore', 'relabel', None]},
                'refine_confidence': _FRACTION_OR_NULL,
                'guide_threshold': _FRACTION_OR_NULL,
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
                    'refined_share': _FRACTION,
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

#: Optional keys of a sample record: a conditional run's request fields, and the
#: share of the mask that refinement changed.
EXTRA_KEYS = ('target', 'meets_request', 'attempts', 'refined_share')

#: Keys of a sample record that hold file paths, in writing order.
PATH_KEYS = ('image', 'image1', 'image2', 'mask')

_FIX_REBUILD = (
    'Rerun `specdm sample` with the same --out to rebuild it from the finished '
    'samples, or restore the file.'
)


def _reject_constant(name: str) -> Any:
    """Refuse the non-standard JSON constants NaN, Infinity and -Infinity.

    Args:
        name: the constant found.

    Raises:
        ValueError: always.
    """
    raise ValueError(f'non-standard JSON constant {name}')


def read_json(path: str) -> Any:
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


def validate(data: Any, schema: Mapping[str, Any], source: str, prefix: str) -> None:
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


def check_header(header: Mapping[str, Any], source: str) -> None:
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


def check_relative(relative: str, source: str, where: str) -> None:
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
    manifest = read_json(path)
    validate(manifest, MANIFEST_SCHEMA, path, '$')
    check_header(manifest, path)

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
        for key in PATH_KEYS:
            if key not in sample:
                continue
            relative, where = sample[key], f'$.samples[{number}].{key}'
            check_relative(relative, path, where)
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
