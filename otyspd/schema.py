"""Field definitions and OWS names: the vocabulary shared by client and sandbox.

The manual (section 2.4) describes, for every field of every service, a set of
attributes: type, listable, filterable, sortable, updatable, obligatory,
deletable, insertable, has options, not empty, in list by default, comments.
:class:`FieldDef` holds one such row. Nested fields are named by their dotted
path (``Person.firstName``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .errors import InvalidInput

__all__ = [
    "FIELD_TYPES",
    "FieldDef",
    "full_method",
    "full_service",
    "short_service",
]

#: The field types otyspd understands. ``collection`` is a list or a map keyed
#: by id; ``container`` is a sub-object whose children are fields of their own.
FIELD_TYPES = (
    "string",
    "text",
    "integer",
    "float",
    "boolean",
    "date",
    "datetime",
    "collection",
    "container",
)

_PREFIX = "Otys.Services."
_UNPREFIXED = {"loginByUid", "login", "loginAs", "check", "logout"}


@dataclass(frozen=True)
class FieldDef:
    """One field of a service, with the attributes the manual lists."""

    name: str
    type: str = "string"
    listable: bool = True
    filterable: bool = True
    sortable: bool = True
    updatable: bool = True
    obligatory: bool = False
    deletable: bool = False
    insertable: bool = True
    has_options: bool = False
    not_empty: bool = False
    in_list_by_default: bool = False
    multilingual: bool = False
    type_comment: str = ""
    comment: str = ""

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"unknown field type {self.type!r} for {self.name!r}")

    def as_row(self) -> dict:
        """The definition as a plain dict (one row of :meth:`Session.fields`)."""
        return asdict(self)


FIELD_ATTRIBUTES = tuple(f.name for f in fields(FieldDef))


def short_service(service: str) -> str:
    """Normalise a service name to ``CandidateService``.

    >>> short_service("Candidate"), short_service("Otys.Services.CandidateService")
    ('CandidateService', 'CandidateService')
    """
    if not isinstance(service, str) or not service.strip():
        raise InvalidInput(
            f"a service name must be a non-empty string, got {service!r}"
        )
    name = service.strip()
    if name.startswith(_PREFIX):
        name = name[len(_PREFIX) :]
    if "." in name or not name.replace("_", "").isalnum():
        raise InvalidInput(
            f"{service!r} is not a service name; use e.g. 'Candidate', "
            "'CandidateService' or 'Otys.Services.CandidateService'"
        )
    if not name.endswith("Service"):
        name += "Service"
    return name[0].upper() + name[1:]


def full_service(service: str) -> str:
    """Normalise a service name to ``Otys.Services.CandidateService``."""
    return _PREFIX + short_service(service)


def full_method(method: str) -> str:
    """Normalise a method name to its full form.

    >>> full_method("CandidateService.getDetail")
    'Otys.Services.CandidateService.getDetail'
    >>> full_method("check")
    'check'
    """
    if not isinstance(method, str) or not method.strip():
        raise InvalidInput(f"a method name must be a non-empty string, got {method!r}")
    name = method.strip()
    if name in _UNPREFIXED:
        return name
    if name.startswith(_PREFIX):
        name = name[len(_PREFIX) :]
    service, dot, verb = name.rpartition(".")
    if not dot or not service or not verb:
        raise InvalidInput(
            f"{method!r} is not a method name; use 'CandidateService.getDetail' "
            "or 'Otys.Services.CandidateService.getDetail'"
        )
    return f"{_PREFIX}{short_service(service)}.{verb}"
