"""otyspd: work with OTYS recruiting data in pandas and Jupyter.

>>> import otyspd
>>> session = otyspd.connect(sandbox=True)          # simulated data, no key needed
>>> df = session.read_list("Candidate", ["uid", "Person.lastName", "statusId"])
"""

import logging

# The simulator is part of the toolkit: otyspd.sandbox.serve() after `import otyspd`.
from . import sandbox
from .duplicates import AmbiguousIdWarning, merge_map, surviving_ids
from .errors import (
    AccessDenied,
    BadRequest,
    ConfigurationError,
    DriftError,
    FileTransferError,
    HTTPStatusError,
    IncompleteRead,
    InvalidInput,
    NotFound,
    OtysError,
    OwsError,
    ProtocolError,
    RateLimited,
    RequestTimeout,
    TransportError,
)
from .frames import SchemaDriftError, explode, nest_changes
from .options import UnknownOptionWarning
from .paging import DriftWarning
from .paging import read_list_last as read_list
from .query import F
from .session import Session, connect
from .writeback import UndoWarning, WriteReport

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "AmbiguousIdWarning",
    "BadRequest",
    "ConfigurationError",
    "DriftError",
    "DriftWarning",
    "F",
    "FileTransferError",
    "HTTPStatusError",
    "IncompleteRead",
    "InvalidInput",
    "NotFound",
    "OtysError",
    "OwsError",
    "ProtocolError",
    "RateLimited",
    "RequestTimeout",
    "SchemaDriftError",
    "Session",
    "TransportError",
    "UndoWarning",
    "UnknownOptionWarning",
    "WriteReport",
    "connect",
    "explode",
    "merge_map",
    "nest_changes",
    "read_list",
    "sandbox",
    "surviving_ids",
]
