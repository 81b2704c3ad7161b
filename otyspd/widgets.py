"""Notebook front ends: connect, explore a service, review a write-back.

Three small forms built from ipywidgets, each a plain object whose parts are
attributes (so a test or a script can fill them in and press their buttons)
and which shows itself when it is the last value of a cell:

>>> from otyspd import widgets
>>> form = widgets.connect_form()          # key, URL, "use the sandbox", Connect
>>> ex = widgets.explorer(form.session)    # service, fields, condition, sort
>>> panel = widgets.review(session, "Candidate", original, edited)

What they show is meant to be saved in a notebook: never a key or token, no
memory addresses, no timings. The API key is wiped from its box as soon as the
connect attempt is over, so the saved widget state holds no key. Progress bars
appear only where someone is watching (see :mod:`otyspd.progress`).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as w
import pandas as pd

from . import session as session_module
from .errors import InvalidInput, OtysError, redact
from .frames import is_missing
from .journal import RECORD, STATUSES
from .schema import short_service
from .transport import DEFAULT_URL

__all__ = [
    "MAIN_SERVICES",
    "OPERATORS",
    "ConnectForm",
    "Explorer",
    "ReviewPanel",
    "connect_form",
    "explorer",
    "review",
]

logger = logging.getLogger(__name__)


#: The services offered by the explorer's dropdown (label, service name).
MAIN_SERVICES = (
    ("Candidates", "CandidateService"),
    ("Vacancies", "VacancyService"),
    ("Relations", "RelationService"),
    ("Relation contacts", "RelationContactService"),
    ("Procedures", "ProcedureService"),
    ("Users", "UserService"),
)

#: The operators of a condition row, as shown in its dropdown.
OPERATORS = (
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "not like",
    "is true",
    "is false",
    "in",
)
_NO_VALUE = {"is true", "is false"}

#: Rows shown in a table inside a widget; the full frame stays on the object.
MAX_SHOWN_ROWS = 60


# ---- shared helpers ---------------------------------------------------------


def _last_session() -> Any:
    session = getattr(session_module, "_last_session", None)
    if session is None or getattr(session, "closed", False):
        raise InvalidInput(
            "no session yet: connect first (otyspd.connect(...) or the connect form)"
        )
    return session


_ADDRESS = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


def _describe_error(exc: BaseException) -> str:
    """A one-paragraph, secret-free message for an error shown in a form."""
    if isinstance(exc, OtysError):
        text = str(exc)
    else:
        # Anything else is unexpected; name its type so it can be reported.
        text = redact(f"unexpected {type(exc).__name__}: {exc}")
    # Reprs of low-level objects (a refused connection) carry a memory address.
    return _ADDRESS.sub(r"<\1>", text)


def _message_html(text: str, kind: str = "info") -> str:
    colour = {"info": "inherit", "ok": "#1a7f37", "error": "#b42318"}[kind]
    body = html.escape(text).replace("\n", "<br>")
    return f'<div style="color: {colour}; white-space: normal">{body}</div>'


def _frame_bundle(frame: pd.DataFrame, max_rows: int = MAX_SHOWN_ROWS) -> dict:
    """A display_data output of a frame, the same text on every run."""
    return {
        "output_type": "display_data",
        "data": {
            "text/plain": frame.to_string(max_rows=max_rows),
            "text/html": frame.to_html(max_rows=max_rows),
        },
        "metadata": {},
    }


def _show(output: w.Output, frame: pd.DataFrame) -> None:
    """Make ``output`` show ``frame`` (set directly: no kernel needed, no stray text)."""
    output.outputs = (_frame_bundle(frame),)


class _Form:
    """What the three forms share: a message line, busy buttons, display."""

    widget: w.Widget
    message: w.HTML
    message_text: str = ""

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _say(self, text: str, kind: str = "info") -> None:
        self.message_text = text
        self.message.value = _message_html(text, kind)

    @contextmanager
    def _busy(self, *buttons: w.Button) -> Iterator[_Run]:
        """Disable ``buttons`` while work runs; show any error in the message line.

        The buttons get their earlier state back; ``run.ok`` tells the caller
        whether the work finished, so it can turn off what must not be repeated.
        """
        before = [button.disabled for button in buttons]
        for button in buttons:
            button.disabled = True
        run = _Run()
        try:
            yield run
            run.ok = True
        except Exception as exc:
            # The user sees the message; a debug log keeps the trace of a surprise.
            unexpected = not isinstance(exc, OtysError)
            logger.debug(
                "form action failed: %s", _describe_error(exc), exc_info=unexpected
            )
            self._say(_describe_error(exc), "error")
        finally:
            for button, was in zip(buttons, before, strict=True):
                button.disabled = was


def _ignored(button: w.Button | None) -> bool:
    """Drop a click on a disabled button, as the browser does.

    ``button.click()`` from code, or a click queued while the kernel was busy,
    would otherwise run an action that is not available (applying twice).
    """
    if button is not None and button.disabled:
        logger.debug("ignored a click on the disabled button %r", button.description)
        return True
    return False


class _Run:
    """The outcome of one busy block."""

    ok = False


# ---- connect form -----------------------------------------------------------


class ConnectForm(_Form):
    """Connect to OWS (or a sandbox) from a notebook.

    Attributes:
        key: the API key box (a Password; emptied after every attempt).
        url: the JSON-RPC endpoint.
        username, password: optional OTYS login for the field-list pages,
            which the explorer uses to suggest fields (the password box is
            emptied after every attempt too).
        sandbox: "Use the sandbox" (simulated data, no key needed).
        connect_button: starts the connection.
        message: the status line (who is connected, or what went wrong).
        session: the connected :class:`~otyspd.Session`, or None.
        widget: the whole form, to display.
    """

    def __init__(
        self, url: str | None = None, *, sandbox: bool = False, **options: Any
    ) -> None:
        self.session: Any = None
        self._options = options
        self.key = w.Password(description="API key", placeholder="paste the API key")
        self.url = w.Text(
            value=url or os.environ.get("OTYS_URL") or DEFAULT_URL,
            description="URL",
            layout=w.Layout(width="32em"),
        )
        self.username = w.Text(
            description="Username", placeholder="optional: for the field lists"
        )
        self.password = w.Password(
            description="Password", placeholder="optional: for the field lists"
        )
        self.sandbox = w.Checkbox(value=sandbox, description="Use the sandbox")
        self.connect_button = w.Button(description="Connect", button_style="primary")
        self.message = w.HTML()
        self.widget = w.VBox(
            [
                self.key,
                self.url,
                self.username,
                self.password,
                self.sandbox,
                self.connect_button,
                self.message,
            ]
        )

        self.sandbox.observe(self._sandbox_toggled, names="value")
        self.connect_button.on_click(self._connect_clicked)
        self._sandbox_toggled()
        self._say("Not connected.")

    def __repr__(self) -> str:
        return f"ConnectForm({self._status()})"

    def _status(self) -> str:
        if self.session is None:
            return "not connected"
        return f"connected to {self._who()}"

    def _who(self) -> str:
        user = getattr(self.session, "user", None) or {}
        client = user.get("client") or user.get("clientId") or "an unnamed client"
        name = user.get("username") or user.get("email") or user.get("id") or "?"
        return f"{client} as {name}"

    def _sandbox_toggled(self, change: Any = None) -> None:
        # The sandbox brings its own key, URL and login; greying them out says so.
        for box in (self.key, self.url, self.username, self.password):
            box.disabled = self.sandbox.value

    def _connect_clicked(self, button: w.Button | None = None) -> None:
        if _ignored(button):
            return
        self._say("Connecting ...")
        with self._busy(self.connect_button):
            try:
                session = self._open_session()
            finally:
                # Wipe the secrets whatever happened: saved widget state holds none.
                self.key.value = ""
                self.password.value = ""
            self._adopt(session)

    def _open_session(self) -> Any:
        if self.sandbox.value:
            return session_module.connect(sandbox=True, **self._options)
        key = self.key.value.strip()
        if not key:
            raise InvalidInput(
                "enter an API key, or tick 'Use the sandbox' to try simulated data"
            )
        url = self.url.value.strip()
        if not url:
            raise InvalidInput("enter the OWS URL (ending in /jservice.php)")
        options = dict(self._options)
        if self.username.value.strip():
            options["username"] = self.username.value.strip()
        if self.password.value:
            options["password"] = self.password.value
        return session_module.connect(api_key=key, url=url, **options)

    def _adopt(self, session: Any) -> None:
        # One form, one live session: the one it replaces is closed.
        previous, self.session = self.session, session
        if previous is not None and previous is not session:
            _close_quietly(previous)
        session_module._last_session = session
        simulated = getattr(session, "simulated", False) or self.sandbox.value
        note = " (simulated data)" if simulated else ""
        self._say(f"Connected to {self._who()}{note}.", "ok")


def _close_quietly(session: Any) -> None:
    try:
        session.close()
    except Exception as exc:  # the old session may well be gone already
        logger.debug("closing the previous session failed: %s", _describe_error(exc))


def connect_form(
    url: str | None = None, *, sandbox: bool = False, **options: Any
) -> ConnectForm:
    """A form to connect to OWS with an API key, or to a local sandbox.

    The key is never shown and is wiped from the form once used. The session
    is ``form.session`` and becomes the one module-level helpers use; ``options``
    go to :func:`otyspd.connect` (``timeout``, ``retries``, or sandbox options
    such as ``records``).

    >>> form = connect_form()
    >>> form                                   # fill in, press Connect
    >>> df = form.session.read_list("Candidate", ["Person.lastName"])
    """
    return ConnectForm(url, sandbox=sandbox, **options)


# ---- explorer ---------------------------------------------------------------


class ConditionRow:
    """One ``field operator value`` line of the explorer's condition builder."""

    def __init__(self, on_remove: Any, fields: list[str]) -> None:
        self.field = w.Combobox(
            options=fields,
            placeholder="field",
            ensure_option=False,
            layout=w.Layout(width="16em"),
        )
        self.op = w.Dropdown(
            options=OPERATORS, value="==", layout=w.Layout(width="7em")
        )
        self.value = w.Text(placeholder="value", layout=w.Layout(width="16em"))
        self.remove_button = w.Button(
            description="✕", tooltip="remove this row", layout=w.Layout(width="3em")
        )
        self.widget = w.HBox([self.field, self.op, self.value, self.remove_button])
        self.op.observe(self._op_changed, names="value")
        self.remove_button.on_click(lambda _: on_remove(self))

    def _op_changed(self, change: Any = None) -> None:
        self.value.disabled = self.op.value in _NO_VALUE
        self.value.placeholder = "a, b, c" if self.op.value == "in" else "value"

    def set(self, field: str, op: str, value: str = "") -> ConditionRow:
        """Fill the row in one go (for scripts and tests)."""
        self.field.value, self.op.value, self.value.value = field, op, value
        return self

    def is_blank(self) -> bool:
        return not self.field.value.strip() and not self.value.value.strip()


class Explorer(_Form):
    """Browse one service: pick fields, build a condition and sort, preview, load.

    Attributes:
        service: the service dropdown.
        fields: the fields to read (a multi-select of the service's listable fields).
        extra_fields: more dotted paths, comma separated (for fields not listed).
        rows: the condition rows (:class:`ConditionRow`); ``add_row_button`` adds one.
        raw_condition: an OWS condition as JSON (``{"statusId": "3"}`` or a
            ``{"type": "COND", ...}`` dict), ANDed with the rows.
        sort_field, sort_order: one sort key and its direction.
        preview_button: reads one page of ``preview_rows`` rows.
        load_button: reads the whole list into ``frame``.
        output: where the table is shown; message: what happened, or what is wrong.
        frame: the last full read (a DataFrame), or None.
        preview_frame: the last preview, or None.
        widget: the whole explorer, to display.
    """

    def __init__(
        self, session: Any, *, service: str = "CandidateService", preview_rows: int = 20
    ) -> None:
        self.session = session
        self.preview_rows = preview_rows
        self.frame: pd.DataFrame | None = None
        self.preview_frame: pd.DataFrame | None = None
        self._defs: dict[str, Any] | None = None

        services = list(MAIN_SERVICES)
        if short_service(service) not in {name for _, name in services}:
            services.append((short_service(service), short_service(service)))
        self.service = w.Dropdown(
            options=services, value=short_service(service), description="Service"
        )
        self.fields = w.SelectMultiple(
            options=[], description="Fields", rows=8, layout=w.Layout(width="32em")
        )
        self.extra_fields = w.Text(
            description="More fields",
            placeholder="dotted paths, comma separated: Person.AddressPrimary.city",
            layout=w.Layout(width="32em"),
        )
        self.rows: list[ConditionRow] = []
        self.rows_box = w.VBox()
        self.add_row_button = w.Button(description="Add condition", icon="plus")
        self.raw_condition = w.Textarea(
            description="Raw",
            placeholder='optional OWS condition as JSON, e.g. {"statusId": "3"}',
            layout=w.Layout(width="32em", height="4em"),
        )
        self.sort_field = w.Combobox(
            description="Sort by", placeholder="field (optional)", ensure_option=False
        )
        self.sort_order = w.Dropdown(
            options=[("ascending", "asc"), ("descending", "desc")],
            value="asc",
            layout=w.Layout(width="9em"),
        )
        self.preview_button = w.Button(
            description=f"Preview {preview_rows}", icon="eye"
        )
        self.load_button = w.Button(
            description="Load all", icon="download", button_style="primary"
        )
        self.message = w.HTML()
        self.output = w.Output()
        self.widget = w.VBox(
            [
                self.service,
                self.fields,
                self.extra_fields,
                w.HTML("<b>Condition</b> (all rows must hold)"),
                self.rows_box,
                self.add_row_button,
                self.raw_condition,
                w.HBox([self.sort_field, self.sort_order]),
                w.HBox([self.preview_button, self.load_button]),
                self.message,
                self.output,
            ]
        )

        self.service.observe(self._service_changed, names="value")
        self.add_row_button.on_click(lambda _: self.add_row())
        self.preview_button.on_click(self._preview_clicked)
        self.load_button.on_click(self._load_clicked)
        self._service_changed()

    def __repr__(self) -> str:
        read = (
            "nothing read yet"
            if self.frame is None
            else f"frame of {len(self.frame)} rows"
        )
        return f"Explorer({self.service.value}, {read})"

    # ---- the form's parts

    def add_row(self, field: str = "", op: str = "==", value: str = "") -> ConditionRow:
        """Add a condition row (filled in if arguments are given) and return it."""
        row = ConditionRow(self._remove_row, self._filterable()).set(field, op, value)
        self.rows.append(row)
        self.rows_box.children = [r.widget for r in self.rows]
        return row

    def _remove_row(self, row: ConditionRow) -> None:
        self.rows.remove(row)
        self.rows_box.children = [r.widget for r in self.rows]

    def _service_changed(self, change: Any = None) -> None:
        # Suggest the fields the server lists for this service, when it says.
        service = self.service.value
        try:
            self._defs = self.session.field_defs(service)
            unknown = f"The field list of {service} is unknown"
        except OtysError as exc:
            self._defs = None
            unknown = f"The field list of {service} could not be read ({exc})"
        defs = self._defs or {}

        # Offer each field where it can be used; typed paths stay possible.
        listable = [name for name, d in defs.items() if d.listable]
        self.fields.options = listable
        self.fields.value = ()
        self.fields.layout.display = None if listable else "none"
        self.sort_field.options = [name for name, d in defs.items() if d.sortable]
        for row in self.rows:
            row.field.options = self._filterable()

        if self._defs is None:
            self._say(f"{unknown}; type dotted paths under 'More fields'.")
        else:
            self._say(f"{service}: {len(listable)} fields can be listed.")

    def _filterable(self) -> list[str]:
        defs = self._defs or {}
        return [name for name, d in defs.items() if d.filterable]

    # ---- from the form to a request

    def what(self) -> list[str]:
        """The fields to read, checked: the selected ones, then the typed ones."""
        typed = [p.strip() for p in self.extra_fields.value.split(",") if p.strip()]
        paths = [*self.fields.value, *(p for p in typed if p not in self.fields.value)]
        paths = [p for p in paths if p != "uid"]
        if not paths:
            raise InvalidInput(
                "pick at least one field (or type dotted paths under 'More fields')"
            )
        return paths

    def condition(self) -> Any:
        """The condition of the rows and the raw box, ANDed, or None."""
        from .query import F, as_condition

        parts = []
        problems = []
        for number, row in enumerate(self.rows, start=1):
            if row.is_blank():
                continue
            try:
                parts.append(self._row_condition(row, F))
            except InvalidInput as exc:
                problems.append(f"condition row {number}: {exc}")
        raw = self.raw_condition.value.strip()
        if raw:
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError as exc:
                problems.append(
                    f"raw condition: not JSON ({exc.msg} at character {exc.pos})"
                )
            else:
                try:
                    tree = as_condition(parsed)
                except InvalidInput as exc:
                    problems.append(f"raw condition: {exc}")
                else:
                    if tree is not None:
                        parts.append(tree)
        if problems:
            raise InvalidInput("the condition is not valid", problems)
        if not parts:
            return None
        combined = parts[0]
        for part in parts[1:]:
            combined = combined & part
        return combined

    def _row_condition(self, row: ConditionRow, F: Any) -> Any:
        field = row.field.value.strip()
        if not field:
            raise InvalidInput("pick a field")
        op, text = row.op.value, row.value.value.strip()
        target = F(field)
        if op == "is true":
            return target.is_true()
        if op == "is false":
            return target.is_false()
        if op == "in":
            values = [v.strip() for v in text.split(",") if v.strip()]
            if not values:
                raise InvalidInput(
                    f"'in' needs values separated by commas for {field!r}"
                )
            return target.isin([self._typed(field, v) for v in values])
        if op in ("like", "not like"):
            if not text:
                raise InvalidInput(
                    f"'{op}' needs a pattern for {field!r} (% matches any text)"
                )
            return target.like(text) if op == "like" else target.not_like(text)
        value = self._typed(field, text)
        compare = {
            "==": target.__eq__,
            "!=": target.__ne__,
            "<": target.__lt__,
            "<=": target.__le__,
            ">": target.__gt__,
            ">=": target.__ge__,
        }[op]
        return compare(value)

    def _typed(self, field: str, text: str) -> Any:
        """The typed text as the field's type wants it (text stays text when unknown)."""
        kind = getattr((self._defs or {}).get(field), "type", None)
        try:
            if kind == "integer":
                return int(text)
            if kind == "float":
                return float(text)
        except ValueError:
            raise InvalidInput(
                f"{field!r} is a number field; {text!r} is not "
                + ("a whole number" if kind == "integer" else "a number")
            ) from None
        if kind == "boolean":
            lowered = text.lower()
            if lowered in ("1", "true", "yes"):
                return True
            if lowered in ("0", "false", "no"):
                return False
            raise InvalidInput(
                f"{field!r} is true or false; use 'is true' / 'is false'"
            )
        if not text and kind not in (None, "string", "text"):
            raise InvalidInput(f"{field!r} needs a value")
        return text

    def sort(self) -> list[str] | None:
        """The sort as a list (``["-entryDateTime"]``), or None."""
        field = self.sort_field.value.strip()
        if not field:
            return None
        return [f"-{field}" if self.sort_order.value == "desc" else field]

    def _request(self) -> dict:
        """The read the form describes, checked (raises InvalidInput)."""
        return {
            "service": self.service.value,
            "what": self.what(),
            "condition": self.condition(),
            "sort": self.sort(),
        }

    # ---- the buttons

    def _preview_clicked(self, button: w.Button | None = None) -> None:
        if _ignored(button):
            return
        with self._busy(self.preview_button, self.load_button):
            request = self._request()
            self._say("Reading a preview ...")
            with _caught_warnings() as caught:
                frame = self.session.read_list(
                    **request, limit=self.preview_rows, progress=False
                )
            self.preview_frame = frame
            _show(self.output, frame)
            self._say(
                _with_notes(f"Preview: the first {len(frame)} rows.", caught), "ok"
            )

    def _load_clicked(self, button: w.Button | None = None) -> None:
        if _ignored(button):
            return
        with self._busy(self.preview_button, self.load_button):
            request = self._request()
            self._say("Reading all rows ...")
            self.output.outputs = ()
            # A progress bar drawn while reading lands inside the output area.
            with self.output, _caught_warnings() as caught:
                frame = self.session.read_list(**request, progress=None)
            self.frame = frame
            _show(self.output, frame)
            done = f"Loaded {len(frame)} rows; the frame is explorer.frame."
            self._say(_with_notes(done, caught), "ok")


@contextmanager
def _caught_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect warnings (drift while paging, ...) to show them in the form."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _with_notes(text: str, caught: list[warnings.WarningMessage]) -> str:
    notes = list(dict.fromkeys(redact(str(item.message)) for item in caught))
    return "\n".join([text, *(f"Warning: {note}" for note in notes)])


def explorer(
    session: Any = None, *, service: str = "CandidateService", preview_rows: int = 20
) -> Explorer:
    """A form to read a service's records: fields, condition, sort, preview, load.

    ``session`` defaults to the last one connected. The loaded frame is
    ``explorer.frame``.

    >>> ex = explorer(session)
    >>> ex                                     # pick fields, press Load all
    >>> df = ex.frame
    """
    return Explorer(
        session if session is not None else _last_session(),
        service=service,
        preview_rows=preview_rows,
    )


# ---- review panel -----------------------------------------------------------

#: The order statuses are counted in, so the counts line reads the same each run.
_STATUS_ORDER = STATUSES
_PLANNED = "planned"


def _cell_text(value: Any) -> str:
    return "(empty)" if is_missing(value) else str(value)


def _change_label(row: Any) -> str:
    """One change in a line: ``1042 · Person.lastName: Jansen → Janssen``."""
    if row.field == RECORD:
        what = "delete the record" if row.status == _PLANNED else "the whole record"
    else:
        what = f"{row.field}: {_cell_text(row.old)} → {_cell_text(row.new)}"
    label = f"{row.uid} · {what}"
    if row.status != _PLANNED:
        note = getattr(row, "error", None)
        server = getattr(row, "server", None)
        if row.status == "conflict" and not is_missing(server):
            note = f"the server now holds {_cell_text(server)}"
        label += f"  [{row.status}" + (f": {note}]" if not is_missing(note) else "]")
    return label


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _counts_text(counts: Any) -> str:
    """``written 3, failed 1`` in a fixed order; zero counts are left out."""
    counts = dict(counts or {})
    names = [s for s in _STATUS_ORDER if s in counts]
    names += sorted(str(s) for s in counts if s not in _STATUS_ORDER)
    shown = [f"{name} {counts[name]}" for name in names if counts[name]]
    return ", ".join(shown) if shown else "nothing"


class ReviewPanel(_Form):
    """Review a write-back before it happens, leave changes out, apply, undo.

    Attributes:
        plan: the dry-run plan (its ``.frame`` has one row per change), or None
            when the edit could not be planned (``message`` says why).
        changes: one checkbox per row of ``plan.frame``; untick to leave a
            change out. ``all_button`` / ``none_button`` tick or untick them all.
        counts: the line with the numbers of changes, records and exclusions
            (``counts_text`` is the same as plain text).
        apply_button: writes the ticked changes; ``report`` is the result.
        undo_button: undoes what ``report`` wrote; ``undo_report`` is the result.
        output: the tables; message: what happened, or what went wrong.
        widget: the whole panel, to display.
    """

    def __init__(
        self,
        session: Any,
        service: str,
        original: pd.DataFrame,
        edited: pd.DataFrame,
        **options: Any,
    ) -> None:
        self.session = session
        self.service_name = service
        self.plan: Any = None
        self.report: Any = None
        self.undo_report: Any = None
        self.changes: list[w.Checkbox] = []
        self.counts_text = ""

        self.message = w.HTML()
        self.counts = w.HTML()
        self.changes_box = w.VBox(layout=w.Layout(max_height="24em", overflow="auto"))
        self.all_button = w.Button(description="Select all")
        self.none_button = w.Button(description="Select none")
        self.apply_button = w.Button(
            description="Apply", button_style="warning", icon="upload", disabled=True
        )
        self.undo_button = w.Button(description="Undo", icon="undo", disabled=True)
        self.output = w.Output()
        self.widget = w.VBox(
            [
                self.counts,
                w.HBox([self.all_button, self.none_button]),
                self.changes_box,
                w.HBox([self.apply_button, self.undo_button]),
                self.message,
                self.output,
            ]
        )

        self.all_button.on_click(lambda button: self._tick_all(button, True))
        self.none_button.on_click(lambda button: self._tick_all(button, False))
        self.apply_button.on_click(self._apply_clicked)
        self.undo_button.on_click(self._undo_clicked)
        self._plan(original, edited, options)

    def __repr__(self) -> str:
        if self.plan is None:
            state = "no plan"
        elif self.undo_report is not None:
            state = "undone"
        elif self.report is not None:
            state = "applied"
        else:
            state = "planned"
        return f"ReviewPanel({short_service(self.service_name)}, {state})"

    # ---- planning

    def _plan(
        self, original: pd.DataFrame, edited: pd.DataFrame, options: dict
    ) -> None:
        with self._busy() as run:
            plan = self.session.write_back(
                self.service_name, original, edited, dry_run=True, **options
            )
        if not run.ok:
            for button in (self.all_button, self.none_button):
                button.disabled = True
            return

        # One checkbox per row of the plan; only planned changes can be ticked.
        self.plan = plan
        frame = plan.frame
        self.changes = []
        for row in frame.itertuples(index=False):
            planned = row.status == _PLANNED
            box = w.Checkbox(
                value=planned,
                disabled=not planned,
                indent=False,
                description=_change_label(row),
                layout=w.Layout(width="auto"),
            )
            box.observe(self._update_counts, names="value")
            self.changes.append(box)
        self.changes_box.children = self.changes

        self.apply_button.disabled = not self._planned_rows()
        _show(self.output, frame)
        self._update_counts()
        if self._planned_rows():
            self._say("Untick the changes to leave out, then press Apply.")
        elif len(frame):
            self._say(
                "Nothing can be written: no change is planned (see the statuses)."
            )
        else:
            self._say("Nothing to write: the edit changes no cell.")

    def _planned_rows(self) -> list[tuple[str, str, w.Checkbox]]:
        if self.plan is None:
            return []
        frame = self.plan.frame
        rows = zip(
            frame["uid"], frame["field"], frame["status"], self.changes, strict=True
        )
        return [
            (str(uid), str(field), box)
            for uid, field, status, box in rows
            if status == _PLANNED
        ]

    @property
    def excluded(self) -> list[tuple[str, str]]:
        """The planned ``(uid, field)`` pairs left out (unticked)."""
        return [
            (uid, field) for uid, field, box in self._planned_rows() if not box.value
        ]

    @property
    def included(self) -> list[tuple[str, str]]:
        """The planned ``(uid, field)`` pairs that Apply will write."""
        return [(uid, field) for uid, field, box in self._planned_rows() if box.value]

    def exclude(self, *pairs: tuple[str, str]) -> None:
        """Untick the planned changes of the given ``(uid, field)`` pairs."""
        wanted = {(str(uid), str(field)) for uid, field in pairs}
        found = set()
        for uid, field, box in self._planned_rows():
            if (uid, field) in wanted:
                box.value = False
                found.add((uid, field))
        missing = sorted(wanted - found)
        if missing:
            raise InvalidInput(
                "no planned change for these (uid, field) pairs",
                [f"{uid} / {field}" for uid, field in missing],
            )

    def _tick_all(self, button: w.Button | None, value: bool) -> None:
        if _ignored(button):
            return
        for _, _, box in self._planned_rows():
            box.value = value

    def _update_counts(self, change: Any = None) -> None:
        if self.plan is None:
            self.counts_text = self.counts.value = ""
            return
        planned, included = self._planned_rows(), self.included
        line = (
            f"{_n(len(planned), 'change')} planned in "
            f"{_n(len({r[0] for r in planned}), 'record')}: "
            f"{len(included)} to write in {_n(len({r[0] for r in included}), 'record')}, "
            f"{len(planned) - len(included)} left out."
        )
        others = {k: v for k, v in dict(self.plan.counts).items() if k != _PLANNED}
        if others:
            line += f" Not to be written: {_counts_text(others)}."
        self.counts_text = line
        self.counts.value = _message_html(line)

    # ---- applying and undoing

    def _apply_clicked(self, button: w.Button | None = None) -> None:
        if _ignored(button):
            return
        if not self.included:
            # Writing nothing would spend the plan; let the user tick something first.
            self._say("No change is ticked: tick the changes to write, then Apply.")
            return
        controls = (self.apply_button, self.all_button, self.none_button)
        with self._busy(*controls) as run:
            excluded = self.excluded
            self._say("Writing ...")
            # A progress bar drawn while writing lands inside the output area.
            with self.output:
                report = self.plan.apply(exclude=excluded)
            self.report = report
            _show(self.output, report.frame)
            self._say(f"Written: {_counts_text(report.counts)}.", "ok")
        if run.ok:
            # The plan is spent: applying it again, or re-ticking, would mislead.
            for control in (*controls, *self.changes):
                control.disabled = True
            self.undo_button.disabled = False

    def _undo_clicked(self, button: w.Button | None = None) -> None:
        if _ignored(button):
            return
        with self._busy(self.undo_button) as run:
            self._say("Undoing ...")
            with self.output:
                undo_report = self.report.undo()
            self.undo_report = undo_report
            _show(self.output, undo_report.frame)
            self._say(f"Undone: {_counts_text(undo_report.counts)}.", "ok")
        if run.ok:
            self.undo_button.disabled = True


def review(
    session: Any,
    service: str,
    original: pd.DataFrame,
    edited: pd.DataFrame,
    **options: Any,
) -> ReviewPanel:
    """A panel to check a write-back's changes, leave some out, apply and undo.

    The plan is a dry run of ``session.write_back(service, original, edited)``;
    nothing is written until Apply is pressed.

    >>> panel = review(session, "Candidate", df, edited)
    >>> panel                                  # untick, press Apply, maybe Undo
    >>> panel.report.frame
    """
    return ReviewPanel(
        session if session is not None else _last_session(),
        service,
        original,
        edited,
        **options,
    )
