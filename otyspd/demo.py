"""The walk-through behind ``otyspd demo``: a small cleanup on the sandbox.

It does, on made-up data, what a data person does with a client's candidates:
read a list into a frame, tidy e-mail addresses and names, look at the plan,
write the fixes back, read again to check the server holds them, and undo.
Every step prints one short paragraph; the function returns the numbers so
that a test can hold the walk-through to them.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

import pandas as pd

__all__ = ["run_demo"]

FIELDS = [
    "uid",
    "Person.firstName",
    "Person.infix",
    "Person.lastName",
    "Person.emailPrimary",
    "statusId",
    "userId",
]
EMAIL = "Person.emailPrimary"
NAMES = ["Person.firstName", "Person.infix", "Person.lastName"]


def tidy_email(value: Any) -> Any:
    """Trim and lower-case an e-mail address; missing stays missing."""
    if not isinstance(value, str):
        return value
    return value.strip().lower()


def tidy_spacing(value: Any) -> Any:
    """Trim a name and collapse runs of spaces; capitals are left as they are."""
    if not isinstance(value, str):
        return value
    return re.sub(r"\s+", " ", value).strip()


def clean_candidates(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``frame`` with tidied e-mail addresses and name spacing."""
    edited = frame.copy()
    edited[EMAIL] = edited[EMAIL].map(tidy_email).astype(frame[EMAIL].dtype)
    for column in NAMES:
        edited[column] = edited[column].map(tidy_spacing).astype(frame[column].dtype)
    return edited


def run_demo(*, records: int = 500, seed: int = 1, out: TextIO) -> dict[str, int]:
    """Run the cleanup walk-through on a fresh sandbox and print each step to ``out``.

    Returns the numbers of the run: rows read, cells changed, cells written,
    cells verified on the server, cells restored by the undo.

    Raises:
        AssertionError: if the server does not hold what the report says.
    """
    import otyspd

    def say(text: str = "") -> None:
        print(text, file=out)

    say("otyspd demo: a cleanup on a local OWS sandbox with made-up data.")
    with otyspd.connect(sandbox=True, records=records, seed=seed) as session:
        who = session.user or {}
        say(f"Connected as {who.get('username')!r} of {who.get('client')!r}.")

        # Read: one typed frame, option ids shown as labels.
        frame = session.read_list("Candidate", FIELDS, sort=["uid"])
        say(f"\nRead {len(frame)} candidates with {len(frame.columns)} fields.")
        say(frame.head(5).to_string())

        # Clean: tidy e-mail addresses and the spacing of names.
        edited = clean_candidates(frame)
        changes = session.diff("Candidate", frame, edited)
        per_field = changes["field"].value_counts().sort_index()
        say(f"\nThe cleanup changes {len(changes)} cells:")
        for field, count in per_field.items():
            say(f"  {field}: {count}")

        # Plan: a dry run sends nothing, and shows what would be sent.
        plan = session.write_back("Candidate", frame, edited, dry_run=True)
        say(f"\nDry run: {plan.counts} (nothing was sent).")

        # Write: only the changed cells go out, in MultiService batches.
        report = plan.apply()
        say(f"Write-back: {report.counts}.")
        written = int(report.counts.get("written", 0))

        # Verify: read again and compare with what we meant to write.
        after = session.read_list("Candidate", FIELDS, sort=["uid"])
        verified = _matching_cells(after, edited, changes)
        say(
            f"Read again: {verified} of {len(changes)} changed cells hold the new value."
        )

        # Undo: the journal knows every old value.
        undo = report.undo()
        restored_frame = session.read_list("Candidate", FIELDS, sort=["uid"])
        restored = _matching_cells(restored_frame, frame, changes)
        say(f"Undo: {undo.counts}; {restored} cells hold their old value again.")

    if not (written == verified == restored == len(changes)):
        raise AssertionError(
            f"the server does not match the report: {len(changes)} changes, "
            f"{written} written, {verified} verified, {restored} restored"
        )
    say("\nEverything the report said was written is on the server, and undone again.")
    return {
        "rows": len(frame),
        "changes": len(changes),
        "written": written,
        "verified": verified,
        "restored": restored,
    }


def _matching_cells(
    actual: pd.DataFrame, expected: pd.DataFrame, changes: pd.DataFrame
) -> int:
    """Count the changed cells whose value in ``actual`` equals ``expected``."""
    same = 0
    for uid, field in zip(changes["uid"], changes["field"], strict=True):
        got, want = actual.at[uid, field], expected.at[uid, field]
        # A missing value only matches a missing one; comparing it with == gives NA.
        if pd.isna(got) or pd.isna(want):
            same += bool(pd.isna(got) and pd.isna(want))
        elif got == want:
            same += 1
    return same
