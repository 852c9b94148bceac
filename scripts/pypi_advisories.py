"""Does PyPI's vulnerability service answer? ``make audit`` asks before it runs pip-audit.

    python -m scripts.pypi_advisories     # exit 0 when it answers; 1, with one line saying so, when it does not

pip-audit reads each pinned release's advisories from ``https://pypi.org/pypi/<name>/<version>/json``.
Where that cannot be reached (no network, a firewall, a proxy or mirror that serves the package index but
not this API), pip-audit reports every requirement as "Dependency not found on PyPI", which reads like a
problem with the requirements. This asks once, within a few seconds, for a release PyPI has always had,
and says plainly when the service is out of reach.
"""

from __future__ import annotations

import json
import sys
from urllib.error import HTTPError
from urllib.request import urlopen

# A release that has been on PyPI since 2024 and stays (yanked releases keep their JSON): anything but its
# JSON means the service is out of reach from here, not that a requirement is wrong.
PROBE_URL = "https://pypi.org/pypi/pip/24.0/json"
TIMEOUT_S = 5.0  # a bounded wait: long enough for a slow link, short of pip-audit's own retries


def unreachable_reason(url: str = PROBE_URL) -> str | None:
    """None when ``url`` answers with PyPI's JSON for the release; else what happened instead, in a few words."""
    try:
        with urlopen(url, timeout=TIMEOUT_S) as response:
            body = json.load(response)
    except HTTPError as error:
        return f"{url} answered HTTP {error.code} ({error.reason}) for a release PyPI has"
    except OSError as error:  # DNS, refused, timed out, TLS: URLError and socket errors are OSErrors
        return f"{url}: {getattr(error, 'reason', None) or error}"
    except ValueError:  # not JSON (a captive portal's page, say)
        body = None
    return None if isinstance(body, dict) and "info" in body else f"{url} answered something other than PyPI's JSON"


def main() -> int:
    reason = unreachable_reason()
    if reason is None:
        return 0
    print(f"PyPI's vulnerability service could not be reached: {reason}. make audit needs it (pip-audit reads "  # noqa: T201
          "each release's advisories from pypi.org): run it where https://pypi.org answers.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
