"""Known vulnerabilities of pinned Python packages, from PyPI's own advisory data (the `vulnerabilities` of
its JSON API, which PyPI fills from the OSV database) — the smoke test's fallback where pip-audit cannot
run: pip-audit asks `/pypi/NAME/VERSION/json`, which this machine's route to PyPI does not serve.

    python3 deploy/audit_pypi.py deploy/out/image-requirements.txt

`/pypi/NAME/json` describes the newest release: a pin that *is* the newest release is checked against its
advisories; an older pin is reported as not checked (never as clean). Exit 1 if any advisory applies.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import httpx


def check(client: httpx.Client, name: str, version: str) -> tuple[str, str, str]:
    response = client.get(f"https://pypi.org/pypi/{name}/json")
    if response.status_code != 200:
        return name, version, f"not checked (HTTP {response.status_code})"
    data = response.json()
    latest = data["info"]["version"]
    if latest != version:
        return name, version, f"not checked (newest release is {latest})"
    vulns = [
        v.get("id", "?") + (f" fixed in {','.join(v['fixed_in'])}" if v.get("fixed_in") else "")
        for v in data.get("vulnerabilities") or []
        if not v.get("withdrawn")
    ]
    return name, version, ("VULNERABLE: " + "; ".join(vulns)) if vulns else "ok"


def main(path: str) -> int:
    with open(path) as f:
        pins = [line.strip().split("==", 1) for line in f if "==" in line]
    with httpx.Client(timeout=20) as client, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: check(client, p[0], p[1]), pins))
    checked = [r for r in results if not r[2].startswith("not checked")]
    vulnerable = [r for r in results if r[2].startswith("VULNERABLE")]
    for name, version, verdict in results:
        if verdict != "ok":
            print(f"  {name}=={version}: {verdict}")
    print(
        f"{len(pins)} packages: {len(checked)} checked against PyPI's advisories, {len(vulnerable)} with a "
        f"known vulnerability, {len(pins) - len(checked)} not checked"
    )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
