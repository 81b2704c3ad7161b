"""The README's short session runs as written, against the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_session_runs_and_its_undo_restores_the_server():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no python session"
    namespace: dict = {}

    exec(compile(blocks[0], "README.md", "exec"), namespace)

    session, df, report = namespace["session"], namespace["df"], namespace["report"]
    try:
        assert len(df) > 0 and df.index.name == "uid"
        assert report.counts.get("written", 0) > 0
        again = session.read_list("Candidate", list(df.columns), sort=["uid"])
        # the undo at the end put every e-mail address back as it was read
        assert again.loc[df.index, "Person.emailPrimary"].equals(
            df["Person.emailPrimary"]
        )
    finally:
        session.close()
