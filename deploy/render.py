"""Render the cloud manifests from their templates (deploy/ecs/*.json.tmpl, deploy/k8s/*.yaml.tmpl).

    python3 deploy/render.py ecs deploy/ecs/values.example.env deploy/out/ecs
    python3 deploy/render.py k8s deploy/k8s/values.example.env deploy/out/k8s
    aws ecs register-task-definition --cli-input-json file://deploy/out/ecs/task-definition.json

``${NAME}`` placeholders take values from the values file (NAME=value lines) and the environment (which
wins). Values are escaped for a JSON string; names ending in ``_JSON`` are inserted as JSON as they are
(lists of subnets). A placeholder without a value stops the render naming it; every output is parsed
(JSON, or YAML documents) before it is written. Standard library + PyYAML only.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class RenderError(ValueError):
    pass


def read_values(path: Path | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if path is not None:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            if not sep:
                raise RenderError(f"{path}:{number}: expected NAME=value, got {line!r}")
            values[name.strip()] = value.strip()
    values.update({k: v for k, v in os.environ.items() if PLACEHOLDER.fullmatch("${" + k + "}")})
    return values


def render_text(template: str, values: dict[str, str], *, source: str = "template") -> str:
    missing = sorted({m for m in PLACEHOLDER.findall(template) if m not in values})
    if missing:
        raise RenderError(
            f"{source}: no value for {', '.join(missing)} (set it in the values file or environment)"
        )

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values[name]
        if name.endswith("_JSON"):
            try:
                json.loads(value)
            except ValueError as exc:
                raise RenderError(f"{source}: {name} must be JSON, got {value!r} ({exc})") from None
            return value
        return json.dumps(value)[1:-1]

    return PLACEHOLDER.sub(one, template)


def render(kind: str, values: dict[str, str]) -> dict[str, str]:
    """{output file name: text} for ``kind`` (ecs | k8s), each parsed to check it."""
    import yaml

    suffix = {"ecs": ".json.tmpl", "k8s": ".yaml.tmpl"}.get(kind)
    if suffix is None:
        raise RenderError(f"kind must be ecs or k8s, got {kind!r}")
    out: dict[str, str] = {}
    for template in sorted((HERE / kind).glob(f"*{suffix}")):
        text = render_text(template.read_text(), values, source=template.name)
        name = template.name.removesuffix(".tmpl")
        try:
            if kind == "ecs":
                json.loads(text)
            else:
                list(yaml.safe_load_all(text))
        except (ValueError, yaml.YAMLError) as exc:
            raise RenderError(f"{name}: rendered text does not parse: {exc}") from None
        out[name] = text
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2:5], file=sys.stderr)
        print("usage: render.py ecs|k8s VALUES_FILE OUT_DIR", file=sys.stderr)
        return 2
    kind, values_path, out_dir = argv
    try:
        files = render(kind, read_values(Path(values_path)))
    except RenderError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (target / name).write_text(text)
        print(target / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
