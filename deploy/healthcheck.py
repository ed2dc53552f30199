"""The image's HEALTHCHECK: is this container's role able to do its work? Exit 0 yes, 1 no.

The role is read from PID 1's command line (tini -- docker-entrypoint ROLE …): the API must be *ready*
(model loaded, database reachable, feature state ready — a load balancer routes only to it then), the
dashboard must answer on its port; other roles (worker, one-shot commands) are healthy while running.
Standard library only: it runs every few seconds and must not import the application.
"""

import os
import sys
import urllib.error
import urllib.request


def role() -> str:
    try:
        with open("/proc/1/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return "unknown"
    for i, arg in enumerate(argv):
        if arg.endswith("docker-entrypoint"):
            return argv[i + 1] if i + 1 < len(argv) else "api"
    return "unknown"


def ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a fixed loopback URL
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    current = role()
    if current == "api":
        return 0 if ok(f"http://127.0.0.1:{os.environ.get('API_PORT', '5001')}/health/ready") else 1
    if current == "dashboard":
        return 0 if ok(f"http://127.0.0.1:{os.environ.get('DASHBOARD_PORT', '8050')}/") else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
