"""Hashed links that log a web user in to an OTYS-hosted portal (manual 2.9).

``OCDService.createToken`` makes a one-off login token for a web user and a
portal page; the link built from it logs that user in and sends them to the
page. The link is a credential in its own right: whoever holds it is logged
in. So it is never logged, and the token is registered with
:func:`otyspd.errors.register_secret` so that no error message can show it.
"""

from __future__ import annotations

import logging
import numbers
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .errors import InvalidInput, ProtocolError, register_secret

if TYPE_CHECKING:
    from .session import Session

__all__ = ["portal_link"]

log = logging.getLogger(__name__)

_LINK = (
    "https://{domain}/index.php/page/ocdapp/bb/1/command/loginandredirect/token/{token}"
)
_HOST = re.compile(
    r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$"
)


def portal_link(
    session: Session,
    webuser_uid: Any,
    url: Any,
    days: Any = 7,
    domain: Any = None,
) -> str:
    """Create a link that logs ``webuser_uid`` in to the portal and opens ``url``.

    Args:
        webuser_uid: the uid of the OCD web user to log in.
        url: the portal page to open (http or https, on the portal's domain).
        days: how many days the link stays valid (a positive whole number; keep it short).
        domain: the portal's domain; defaults to the host of ``url``.

    Returns:
        ``https://<domain>/index.php/page/ocdapp/bb/1/command/loginandredirect/token/<token>``.
        Treat it like a password: whoever opens it is logged in.

    Raises:
        InvalidInput: an empty uid, a URL that is not http(s) or is off the
            portal's domain, or ``days`` not a positive whole number. Nothing was sent.

    >>> link = session.portal_link(webuser_uid, "https://portal.example.com/timesheets", days=3)
    """
    webuser = _webuser(webuser_uid)
    page, host = _page_url(url)
    portal = _domain(domain) if domain is not None else host
    if host != portal:
        raise InvalidInput(
            f"url {page!r} is on {host!r}, not on the portal's domain {portal!r}; "
            "a hashed link can only open a page of the portal itself"
        )
    valid_days = _days(days)

    token = session.call("OCDService.createToken", webuser, {"url": page}, valid_days)
    if not isinstance(token, str) or not token.strip():
        raise ProtocolError(
            "OCDService.createToken did not answer a token",
            method="Otys.Services.OCDService.createToken",
        )
    # The link carries the token URL-encoded: hide that spelling too.
    quoted = quote(token.strip(), safe="")
    register_secret(token)
    register_secret(quoted)
    log.debug("portal link created for a web user, valid %d days", valid_days)
    return _LINK.format(domain=portal, token=quoted)


def _webuser(value: Any) -> str:
    if (
        isinstance(value, bool)
        or not isinstance(value, (str, numbers.Integral))
        or not str(value).strip()
    ):
        raise InvalidInput(f"webuser_uid must be the web user's uid, got {value!r}")
    return str(value).strip()


def _page_url(url: Any) -> tuple[str, str]:
    """Check the page URL; return it with its host (lower case, port kept)."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(
            f"url must be an http(s) address of a portal page, got {url!r}"
        )
    page = url.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in page):
        raise InvalidInput(f"url {url!r} contains spaces or control characters")
    parts = urlsplit(page)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"url {page!r} is not an http or https address")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            f"url {page!r} carries a user name or password; leave them out"
        )
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput(f"url {page!r} has an invalid port") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInput(f"url {page!r} has no host")
    return page, _domain(f"{host}:{port}" if port else host)


def _domain(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"domain must be a host name such as 'portal.example.com', got {value!r}"
        )
    domain = value.strip().lower().rstrip(".")
    if not _HOST.match(domain):
        raise InvalidInput(
            f"domain {value!r} is not a bare host name; give e.g. 'portal.example.com' "
            "(no scheme, path or spaces)"
        )
    return domain


def _days(days: Any) -> int:
    if (
        isinstance(days, bool)
        or not isinstance(days, numbers.Integral)
        or int(days) <= 0
    ):
        raise InvalidInput(
            f"days must be a positive whole number of days, got {days!r}"
        )
    return int(days)
