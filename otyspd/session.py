"""The user-facing :class:`Session` and :func:`connect`.

A Session holds one OWS session token and everything tied to it: the content
language, the option-list cache, the field definitions and the rate budget.
The heavy lifting lives in one module per job; the methods here are the doors
to it, so that ``help(session.read_list)`` in a notebook shows what to pass.
"""

from __future__ import annotations

# SKELETON: the transport-facing core (connect, __init__, call, multi, check,
# logout, language, repr) is filled in by transport work; the methods below
# that delegate to other modules keep these signatures.

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_last_session: Session | None = None


class Session:
    """An open OWS session. Make one with :func:`otyspd.connect`."""

    # ---- reading -----------------------------------------------------------

    def read_list(
        self,
        service: str,
        what: Any,
        condition: Any = None,
        *,
        sort: Any = None,
        limit: int | None = None,
        labels: bool = True,
        progress: bool | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Read a whole list into a DataFrame indexed by ``uid``.

        >>> df = session.read_list("Candidate", ["uid", "Person.lastName"])
        """
        from . import paging

        return paging.read_list(
            self,
            service,
            what,
            condition,
            sort=sort,
            limit=limit,
            labels=labels,
            progress=progress,
            **options,
        )

    def iter_pages(
        self,
        service: str,
        what: Any,
        condition: Any = None,
        *,
        sort: Any = None,
        limit: int | None = None,
        labels: bool = True,
        progress: bool | None = None,
        **options: Any,
    ):
        """Yield the list one DataFrame per page (memory stays bounded)."""
        from . import paging

        return paging.iter_pages(
            self,
            service,
            what,
            condition,
            sort=sort,
            limit=limit,
            labels=labels,
            progress=progress,
            **options,
        )

    def read_detail(self, service: str, uid: str, what: Any, *, labels: bool = True) -> pd.Series:
        """Read one record as a Series named by its uid."""
        from . import paging

        return paging.read_detail(self, service, uid, what, labels=labels)

    def export(self, service: str, what: Any, condition: Any = None, *, path: str, **options: Any):
        """Stream a list to a .parquet, .csv or .jsonl file, page by page."""
        from . import paging

        return paging.export(self, service, what, condition, path=path, **options)

    def options(self, service: str, fields: Any) -> dict[str, dict]:
        """Return the option lists (id -> label) of ``fields``, cached per language."""
        from . import options

        return options.get_options(self, service, fields)

    def field_defs(self, service: str) -> dict[str, Any] | None:
        """The field definitions of ``service`` by dotted name, or None when unknown."""
        from . import fields

        return fields.field_defs(self, service)

    def fields(self, service: str) -> pd.DataFrame:
        """Return the field definitions of ``service`` as a DataFrame."""
        from . import fields

        return fields.fields_frame(self, service)

    # ---- writing -----------------------------------------------------------

    def diff(self, service: str, original: pd.DataFrame, edited: pd.DataFrame) -> pd.DataFrame:
        """One row per changed cell: ``uid``, ``field``, ``old``, ``new``."""
        from . import writeback

        return writeback.diff(self, service, original, edited)

    def write_back(
        self,
        service: str,
        original: pd.DataFrame,
        edited: pd.DataFrame,
        *,
        dry_run: bool = False,
        **options: Any,
    ):
        """Send the changed cells of ``edited`` to the server; return a WriteReport."""
        from . import writeback

        return writeback.write_back(self, service, original, edited, dry_run=dry_run, **options)

    # ---- files, duplicates, portal ----------------------------------------

    def upload(self, path_or_file: Any, name: str | None = None) -> dict:
        """Upload a file to the file service; return its ouid, name, mimeType and size."""
        from . import files

        return files.upload(self, path_or_file, name=name)

    def attach(
        self,
        entity: str,
        uid: str,
        file: Any,
        type_id: Any,
        subject: str,
        **extra: Any,
    ) -> str:
        """Bind an uploaded file to a record's dossier; return the dossier item id."""
        from . import files

        return files.attach(self, entity, uid, file, type_id, subject, **extra)

    def document_types(self) -> pd.DataFrame:
        """All document types of the client as a DataFrame."""
        from . import files

        return files.document_types(self)

    def documents(self, entity: str, uid: str) -> pd.DataFrame:
        """The documents attached to a record's dossier."""
        from . import files

        return files.documents(self, entity, uid)

    def download(self, ouid: str, dest: Any, *, overwrite: bool = False) -> Any:
        """Download a file to ``dest`` (a folder or a file path); return the path."""
        from . import files

        return files.download(self, ouid, dest, overwrite=overwrite)

    def duplicate_info(self, identifier: Any):
        """The merge history of a candidate (uid, internalId or personalNr)."""
        from . import duplicates

        return duplicates.duplicate_info(self, identifier)

    def portal_link(self, webuser_uid: str, url: str, days: int = 7, domain: str | None = None) -> str:
        """A hashed link that logs a web user in to an OTYS portal page."""
        from . import portal

        return portal.portal_link(self, webuser_uid, url, days=days, domain=domain)
