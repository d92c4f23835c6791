"""The configuration reference page, generated from the schema:

    python -m cloudrun_mesh.config.docs > docs/configuration.md

tests/test_config_schema.py fails when the page in the repository differs from this output.
"""

from __future__ import annotations

import json
from typing import Any

from cloudrun_mesh.config import regions, schema

_HEADER = """# Configuration reference

<!-- Generated from cloudrun_mesh/schemas/stack-config.schema.json by
     `python -m cloudrun_mesh.config.docs > docs/configuration.md`; edit the schema, not this page. -->

Every key lives in a stack file, `Pulumi.<stack>.yaml`, under `config:`. The JSON Schema
[`cloudrun_mesh/schemas/stack-config.schema.json`](../cloudrun_mesh/schemas/stack-config.schema.json)
(draft 2020-12) declares each key's type, default, pattern or allowed values, range and an example; the
program validates against it before anything is registered and reports every problem at once, each
with its file, line and column, key and rule, one per line.

Nested keys are written nested in the stack file:

```yaml
config:
  cloudrun-mesh:dns:
    suffix: mesh.example
  cloudrun-mesh:services:
    - name: ads
      port: 9999
```

and with the CLI they take `--path` (quote the key, the shell would expand `[0]`):

```sh
pulumi config set --path 'cloudrun-mesh:dns.suffix' mesh.example
pulumi config set --path 'cloudrun-mesh:services[0].port' 9999
```

A nested key written as one top-level key (`cloudrun-mesh:dns.suffix: mesh.example` directly under
`config:`) is an error that says how to nest it. A key whose namespace is a near miss of `cloudrun-mesh`,
`gcp`, `kubernetes` or `pulumi` (`cloudrun_mesh:dns`, `cloud-run-mesh:dns`) is an error with the
namespace meant: the Pulumi CLI would keep it as another program's setting that nothing reads. Keys of
other namespaces are left alone. Unknown `gcp:` keys are checked against the Google Cloud provider's
settings (`pulumi_gcp/config/vars.py`).

## In your editor

Each shipped stack file starts with a modeline that points the YAML language server (VS Code's Red Hat
YAML extension, JetBrains IDEs) at the schema, for completion and inline errors:

```yaml
# yaml-language-server: $schema=./cloudrun_mesh/schemas/stack-config.schema.json
```

Keep it in the stack files you add, or map every stack file at once in VS Code's `settings.json`:

```json
{
  "yaml.schemas": {
    "./cloudrun_mesh/schemas/stack-config.schema.json": "Pulumi.*.yaml"
  }
}
```

## Regions

`gcp:region` and `clients[i].region` are checked against the regions Cloud Run serves
([Cloud Run locations](https://cloud.google.com/run/docs/locations), as of {date}): a near miss of a
listed region (`us-centrl1`) is an error naming the region meant; any other unlisted region is a warning,
since Google adds regions.

## Example principals

Invokers in a domain reserved for examples (`example.com`, `example.net`, `example.org` and their
subdomains, RFC 2606; the top-level domains `.example`, `.test`, `.invalid`, `.localhost`, RFC 2606 and
RFC 6761) and service accounts of a project `example` or `example-...`
(`verify-dev@example-ci.iam.gserviceaccount.com`, this program's marker) are example principals: a
preview and the offline plan warn about each, naming the key to edit, and `pulumi up` refuses the stack
before registering anything. Replace the shipped stacks' examples with your principals.

## Subnetworks

Without `cloudrun-mesh:subnetwork` (or `clients[i].subnetwork`), Cloud Run's Direct VPC egress uses the
subnetwork named like the network in the client's region, and a reserved address (`dns.address:
reserve`) comes from the region's default subnetwork: both exist only in an auto-mode VPC such as
`default`. The plan warns when a stack relies on that; on a custom-mode VPC name the subnetworks.

## Keys

`services: []` exports no service and `clients: []` deploys no client; an empty value (`services:` with
nothing after it, null) is an error, never the default list.
"""


def _type(prop: dict[str, Any]) -> str:
    t = prop.get("type", "")
    if t == "array":
        item = prop.get("items", {})
        return f"list of {item.get('type', 'any')}s" if item.get("type") != "object" else "list of objects"
    return {"boolean": "bool", "integer": "int"}.get(str(t), str(t))


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`" if text != "" else '`""`'


def _rule(prop: dict[str, Any]) -> str:
    parts = []
    if "enum" in prop:
        parts.append("one of " + ", ".join(_code(v) for v in prop["enum"]))
    if "minimum" in prop or "maximum" in prop:
        parts.append(f"{prop.get('minimum', '')}–{prop.get('maximum', '')}")
    if "minItems" in prop:
        parts.append(f"at least {prop['minItems']} items")
    if "items" in prop and "enum" in prop["items"]:
        parts.append("each one of " + ", ".join(_code(v) for v in prop["items"]["enum"]))
    rule = prop.get("x-rule", "")
    text = "; ".join(parts)
    return (rule[0].upper() + rule[1:] + "." if rule else "") + (f" ({text})" if text and not rule else "")


def _row(key: str, prop: dict[str, Any], required: bool = False) -> str:
    default = _code(prop["default"]) if "default" in prop else ("required" if required else "unset")
    example = _code(prop["examples"][0]) if prop.get("examples") else ""
    desc = prop.get("description", "").replace("|", "\\|")
    rule = _rule(prop).replace("|", "\\|")
    return f"| `{key}` | {_type(prop)} | {default} | {desc} {rule} | {example} |"


def render() -> str:
    props = schema.config_schema()["properties"]
    lines = [_HEADER.replace("{date}", regions.CLOUD_RUN_REGIONS_DATE).rstrip("\n"), "",
             "| Key | Type | Default | Meaning and rule | Example |", "| --- | --- | --- | --- | --- |"]
    for key, prop in props.items():
        lines.append(_row(key, prop, required=key.startswith("gcp:")))
        inner = prop.get("items", prop)
        if inner.get("type") == "object" and "properties" in inner:
            prefix = key.split(":", 1)[1] + ("[i]" if prop.get("type") == "array" else "")
            for field, sub in inner["properties"].items():
                lines.append(_row(f"{prefix}.{field}", sub, required=field in inner.get("required", ())))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
