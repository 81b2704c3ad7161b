"""Option lists: fetch them once, normalise their shapes, map ids to labels and back.

Fields that "have options" (statusId, userId, Person.gender, ...) hold an id;
``getOptionLists`` says which label each id stands for. The answer comes in
several shapes, all normalised here to ``{str(id): label}``:

- the documented map ``{"field": {"3": "Hired", ...}}``, ids as JSON keys
  (always strings) while records carry them as numbers or strings;
- a key other than the field asked for (``Person.languageCode`` answers as
  ``cmsLanguages``);
- ``[]`` for an empty list (PHP encodes an empty map as a list);
- a list of objects ``[{"uid": 3, "value": "Hired"}, ...]`` (the
  ``getOptionListsEx`` style), the id under ``uid``/``id`` and the label under
  ``value``/``label``/``name``.

Lists are cached in ``session._cache`` per service, content language and field.
An id that is not in its list is shown as ``"<id> (unknown id)"``: the row keeps
a visible value instead of turning into a silent missing value, and an
:class:`UnknownOptionWarning` names the ids.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInput, ProtocolError
from .schema import short_service

__all__ = [
    "WELL_KNOWN_OPTION_FIELDS",
    "UnknownOptionWarning",
    "apply_labels",
    "get_options",
    "label_for_unknown",
    "labels_to_ids",
    "map_labels",
    "normalize_option_list",
    "option_key",
]

log = logging.getLogger(__name__)

#: Option fields labelled when the service's field definitions are unknown.
WELL_KNOWN_OPTION_FIELDS = frozenset(
    {
        "statusId",
        "userId",
        "userId2",
        "userId3",
        "categoryId",
        "currencyId",
        "publicationStatusId",
        "Person.gender",
        "Person.languageCode",
        "Person.nationalityCode",
        "Person.AddressPrimary.countryCode",
    }
)

#: Option lists that answer under another key than the field asked for.
RESPONSE_ALIASES = {
    "Person.languageCode": ("cmsLanguages",),
    "languageCode": ("cmsLanguages",),
}

_ID_KEYS = ("uid", "id", "optionId", "key")
_LABEL_KEYS = ("value", "label", "name", "title", "text")


class UnknownOptionWarning(UserWarning):
    """A record holds an option id that its option list does not contain."""


def label_for_unknown(option_id: str) -> str:
    """The label shown for an id missing from its option list."""
    return f"{option_id} (unknown id)"


def option_key(value: Any) -> str | None:
    """The string key of an option id as found in a record (``3``, ``"3"``, ``3.0``)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value != value:
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, np.generic):
        return option_key(value.item())
    return str(value)


def normalize_option_list(raw: Any, *, field: str = "?") -> dict[str, str]:
    """Turn one option list, in any of the shapes the server uses, into ``{id: label}``."""
    if raw is None or (isinstance(raw, (list, dict)) and not raw):
        return {}
    out: dict[str, str] = {}
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            if isinstance(value, Mapping):
                # {"3": {"value": "Hired", ...}}
                label = _first(value, _LABEL_KEYS)
                out[str(key)] = str(label) if label is not None else str(key)
            else:
                out[str(key)] = "" if value is None else str(value)
        return out
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise ProtocolError(
                    f"option list of {field!r}: item {i} is {item!r}, expected an object "
                    "with an id and a label"
                )
            oid = _first(item, _ID_KEYS)
            label = _first(item, _LABEL_KEYS)
            if oid is None:
                raise ProtocolError(
                    f"option list of {field!r}: item {i} has no id ({item!r})"
                )
            out[option_key(oid)] = "" if label is None else str(label)
        return out
    raise ProtocolError(
        f"option list of {field!r} has an unexpected shape: {raw!r:.200}"
    )


def _first(item: Mapping, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in item:
            return item[key]
    return None


def pick_lists(result: Any, fields: list[str]) -> dict[str, dict[str, str]]:
    """Find each asked field's list in a ``getOptionLists`` result (aliases, [] included)."""
    if isinstance(result, list) and not result:
        result = {}
    if not isinstance(result, Mapping):
        raise ProtocolError(
            f"getOptionLists answered {result!r:.200}, expected an object"
        )
    lists: dict[str, dict[str, str]] = {}
    for field in fields:
        candidates = (field, *RESPONSE_ALIASES.get(field, ()), field.rsplit(".", 1)[-1])
        key = next((k for k in candidates if k in result), None)
        if key is None and len(fields) == 1 and len(result) == 1:
            key = next(iter(result))
        lists[field] = (
            normalize_option_list(result[key], field=field) if key is not None else {}
        )
        if key is None:
            log.warning(
                "the server sent no option list for %s; its ids stay unlabelled", field
            )
    return lists


def _cache(session: Any) -> dict:
    cache = getattr(session, "_cache", None)
    if cache is None:
        cache = {}
        session._cache = cache
    return cache.setdefault("options", {})


def cached_options(
    session: Any, service: str, fields: Iterable[str]
) -> tuple[dict, list[str]]:
    """The lists already cached for the current language, and the fields still missing."""
    cache = _cache(session)
    lang = getattr(session, "language_code", None)
    have, missing = {}, []
    for field in fields:
        key = (service, lang, field)
        if key in cache:
            have[field] = cache[key]
        else:
            missing.append(field)
    return have, missing


def store_options(session: Any, service: str, lists: Mapping[str, dict]) -> None:
    """Put fetched lists in the session cache under the current language."""
    cache = _cache(session)
    lang = getattr(session, "language_code", None)
    for field, mapping in lists.items():
        cache[(service, lang, field)] = dict(mapping)


def get_options(session: Any, service: str, fields: Any) -> dict[str, dict]:
    """Return ``{field: {id: label}}`` for ``fields``, fetching only what is not cached.

    >>> session.options("Candidate", ["statusId"])["statusId"]["3"]   # doctest: +SKIP
    'Hired'
    """
    service = short_service(service)
    names = [fields] if isinstance(fields, str) else list(fields)
    bad = [f for f in names if not isinstance(f, str) or not f.strip()]
    if bad or not names:
        raise InvalidInput(
            f"options: fields must be a non-empty list of field names, got {fields!r}"
        )
    have, missing = cached_options(session, service, names)
    if missing:
        result = session.call(f"{service}.getOptionLists", missing)
        fetched = pick_lists(result, missing)
        store_options(session, service, fetched)
        have.update(fetched)
    return {f: dict(have[f]) for f in names}


def apply_labels(
    values: list, mapping: Mapping[str, str], *, column: str
) -> tuple[pd.Categorical, dict]:
    """Turn raw option ids into a categorical of labels.

    Returns the categorical and the id -> label map actually used (the option
    list plus any unknown ids, labelled visibly). A value that is not an id but
    is exactly one label of the list is taken as that label (records that send
    the label instead of the id).
    """
    by_label: dict[str, list[str]] = {}
    for oid, label in mapping.items():
        by_label.setdefault(label, []).append(oid)
    used = dict(mapping)
    categories: dict[str, int] = {}
    for label in mapping.values():
        categories.setdefault(label, len(categories))
    # one lookup per distinct value (ids repeat a lot), then a fast pass over the column
    lookup: dict[Any, int] = {}
    unknown: list[str] = []
    unknown_values: list[Any] = []
    for value in dict.fromkeys(values):
        key = option_key(value)
        if key is None:
            lookup[value] = -1
            continue
        label = used.get(key)
        if label is None:
            ids = by_label.get(key)
            if ids is not None and len(ids) == 1:
                label = key
            else:
                label = label_for_unknown(key)
                used[key] = label
                unknown.append(key)
                unknown_values.append(value)
                categories.setdefault(label, len(categories))
        lookup[value] = categories[label]
    codes = np.array([lookup[v] for v in values], dtype=np.int64)
    if unknown:
        unknown = [option_key(v) for v in values if v in unknown_values]
    if unknown:
        shown = sorted(set(unknown), key=unknown.index)
        warnings.warn(
            f"{column}: {len(unknown)} value(s) hold option ids missing from the option list: "
            f"{', '.join(shown[:20])}; shown as '<id> (unknown id)'",
            UnknownOptionWarning,
            stacklevel=3,
        )
    cat = pd.Categorical.from_codes(codes, categories=list(categories))
    return cat, used


def map_labels(
    mapping: Mapping[str, str], labels: Iterable[Any], *, column: str
) -> dict[Any, str]:
    """Map labels back to option ids with ``mapping`` (``{id: label}``).

    Raises :class:`InvalidInput` naming every label that maps to no id or to
    several ids. Values that are already ids are kept.
    """
    by_label: dict[str, list[str]] = {}
    for oid, label in mapping.items():
        by_label.setdefault(str(label), []).append(str(oid))
    out: dict[Any, str] = {}
    problems = []
    for label in labels:
        if (
            label is None
            or label is pd.NA
            or (isinstance(label, float) and label != label)
        ):
            continue
        ids = by_label.get(str(label))
        if ids is None:
            if str(label) in mapping:
                out[label] = str(label)
            else:
                problems.append(
                    f"{column}: {label!r} is not a label of this option list"
                )
        elif len(ids) > 1:
            problems.append(
                f"{column}: {label!r} is the label of several ids ({', '.join(ids)})"
            )
        else:
            out[label] = ids[0]
    if problems:
        known = sorted({str(label) for label in mapping.values()})
        shown = ", ".join(repr(k) for k in known[:12])
        more = f" and {len(known) - 12} more" if len(known) > 12 else ""
        raise InvalidInput(
            f"{column}: labels cannot be mapped back to option ids "
            f"(the labels are {shown}{more})",
            problems,
        )
    return out


def labels_to_ids(
    session: Any, service: str, column: str, labels: Iterable[Any]
) -> dict[Any, str]:
    """Map labels of ``column`` to option ids with the (cached) option list.

    >>> labels_to_ids(session, "Candidate", "statusId", ["Hired"])   # doctest: +SKIP
    {'Hired': '3'}
    """
    mapping = get_options(session, service, [column])[column]
    return map_labels(mapping, labels, column=column)
