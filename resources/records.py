"""The registry's JSON files, read strictly: a damaged one is named, never guessed around.

Model records and promotion-history entries are written whole (a flushed temporary file renamed
or hard-linked into place, one PUT on S3), so a file that is empty, cut short, not JSON or
missing a field was damaged after it was written: by hand, by a disk or by a copy. Readers refuse
it naming the file, rather than serve a champion or a version worked out from what is left.
"""

import json
from collections.abc import Iterable

from resources.storage import ObjectStore


class DamagedRegistryError(ValueError):
    """A registry file cannot be trusted; the message names it and what to do."""


def parse(store: ObjectStore, key: str, content: bytes, required: Iterable[str], fix: str) -> dict:
    """The JSON object stored at `key`, which must have the `required` fields; otherwise a
    DamagedRegistryError naming the file, what is wrong with it, and `fix`."""
    try:
        value = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = "is empty" if not content.strip() else f"is not valid JSON ({error})"
        raise damaged(store, key, problem, fix) from None
    if not isinstance(value, dict):
        raise damaged(store, key, "is not a JSON object", fix)
    missing = [name for name in required if name not in value]
    if missing:
        raise damaged(store, key, f"lacks the fields {missing}", fix)
    return value


def damaged(store: ObjectStore, key: str, problem: str, fix: str) -> DamagedRegistryError:
    return DamagedRegistryError(f"{store.uri(key)} {problem}: refusing to read around it. {fix}")
