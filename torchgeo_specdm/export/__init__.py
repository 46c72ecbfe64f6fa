"""Export: the generated-dataset writer, and the manifest it writes and updates."""

from ..datasets.manifest import (
    CONFIG_NAME,
    FORMAT,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    PARTS_DIR,
    load_manifest,
)
from .manifest import update_alignment
from .writer import DatasetWriter

__all__ = (
    'CONFIG_NAME',
    'FORMAT',
    'MANIFEST_NAME',
    'MANIFEST_SCHEMA',
    'PARTS_DIR',
    'DatasetWriter',
    'load_manifest',
    'update_alignment',
)
