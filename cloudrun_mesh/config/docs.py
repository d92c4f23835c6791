"""The configuration reference page, generated from the schema:

    python -m cloudrun_mesh.config.docs > docs/configuration.md

tests/test_config_schema.py fails when the page in the repository differs from this output.
"""

from __future__ import annotations

import json
from typing import Any

from cloudrun_mesh.config import regions, schema

# VS Code's YAML extension: a schema for every file matching a glob (`yaml.schemas` in settings.json).
VSCODE_SETTINGS = {"yaml.schemas": {"./cloudrun_mesh/schemas/stack-config.schema.json": "Pulumi.*.yaml"}}

_HEADER = """# Configuration reference

Every stack configuration key with its type, default and rule, and the stack outputs; generated from the schema. [← README](../README.md)

<!-- Generated from cloudrun_mesh/schemas/stack-config.schema.json by
     `python -m cloudrun_mesh.config.docs > docs/configuration.md`: edit the schema, not this page
     (tests/test_config_schema.py fails when the page is stale). -->

Everything is stack configuration (`Pulumi.<stack>.yaml`, or `pulumi config set`). The JSON Schema
[`cloudrun_mesh/schemas/stack-config.schema.json`](../cloudrun_mesh/schemas/stack-config.schema.json)
(draft 2020-12) declares every key under `cloudrun-mesh:` with its type, default, pattern or allowed
values, range, description and an example. The program validates the configuration against it once,
before registering any resource, and reports every problem at once, each with the file,
line and column of the key in `Pulumi.<stack>.yaml` (when the file is there), the key path and the
rule, one problem per line under a line that counts them, e.g.
``Pulumi.prod.yaml:18:5: `cloudrun-mesh:services[1].port` must be a port between 1 and 65535; got 70000.``

Unknown keys are errors too (with a "did you mean" hint), so a typo never silently falls back to a
default. A stack that sets only `gcp:project` and `gcp:region` reproduces the guide exactly.

Keys written with a dot or an index are **nested**: `cloudrun-mesh:dns.suffix` is the field `suffix`
of the object `cloudrun-mesh:dns`, and `services[i].port` the field `port` of an item of the list
`cloudrun-mesh:services`. In the stack file they are indented under their object:

```yaml
config:
  cloudrun-mesh:dns:
    suffix: mesh.example
    ttl: 300
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
`config:`) is an error that says how to nest it. `services: []` exports no service and `clients: []`
deploys no client; an empty value (`services:` with nothing after it) is an error, never the default
list.

## Namespaces

The Pulumi CLI reads a key as `<namespace>:<name>`, split at its one colon, and keeps a key without a
namespace as `cloudrun-mesh:<key>`. A key whose namespace is a near miss of `cloudrun-mesh`, `gcp`,
`kubernetes` or `pulumi` (`cloudrun_mesh:dns`, `cloud-run-mesh:dns`, `gpc:region`) is an error naming
the key meant: the CLI would keep it as a setting that nothing reads. Other namespaces (other programs'
and providers' settings) are left alone. An unknown `gcp:` key is checked against the Google Cloud
provider's settings (`pulumi_gcp/config/vars.py`), with a did-you-mean.

## Regions

`gcp:region` and `clients[i].region` are checked against the regions Cloud Run serves
([Cloud Run locations](https://cloud.google.com/run/docs/locations), as of {date}): a near miss of a
listed region (`us-centrl1`) is an error naming the region meant; any other unlisted region is a
warning, since Google adds regions.

## Example principals

Invokers in a domain reserved for examples (`example.com`, `example.net`, `example.org` and their
subdomains, RFC 2606; the top-level domains `.example`, `.test`, `.invalid` and `.localhost`, RFC 2606
and RFC 6761) and service accounts of a project named `example` or `example-...`
(`verify-dev@example-ci.iam.gserviceaccount.com`, this program's marker) are example principals. A
preview and the offline plan warn about each, naming the key to edit; `pulumi up` refuses the stack
before registering anything. The shipped stacks use them: replace them with your principals.

## Subnetworks

Without `cloudrun-mesh:subnetwork` (or `clients[i].subnetwork`), Cloud Run's
[Direct VPC egress](https://cloud.google.com/run/docs/configuring/vpc-direct-vpc) uses the subnetwork
named like the network in the client's region, and a reserved address (`dns.address: reserve`) comes
from the region's subnetwork of that name: only an auto-mode VPC such as `default` has them. The plan
warns when a stack relies on that; on a custom-mode VPC, name the subnetworks.

## In your editor

Each shipped stack file starts with a modeline that points the YAML language server (VS Code's YAML
extension by Red Hat, JetBrains IDEs) at the schema, for completion, descriptions on hover and
inline errors:

```yaml
# yaml-language-server: $schema=./cloudrun_mesh/schemas/stack-config.schema.json
config:
  gcp:region: us-central1
```

Keep the first line in the stack files you add, or map every stack file at once in VS Code's
`settings.json`: `{SETTINGS}`.

## Keys
"""

_FOOTER = """
Example (`Pulumi.prod.yaml` in this repository is a complete one):

```yaml
config:
  gcp:project: my-project
  gcp:region: us-central1
  cloudrun-mesh:dns:
    address: reserve
    ttl: 300
  cloudrun-mesh:services:
    - name: payments
      namespace: payments
      port: 8080
  cloudrun-mesh:clients:
    - name: checkout-web
      invokers: ["group:platform-oncall@corp.example"]
  cloudrun-mesh:protect: true
```

## Stack outputs

| Output | Value |
| --- | --- |
| `cloudRunUrls` | client → Cloud Run URL |
| `meshName` | the mesh the clients joined |
| `exportedHosts` | service → `<name>.<suffix>` |
| `fetchUrls` | client → service → `<url>/fortio/fetch/<host>`: the guide's final check |
| `dnsZone` | managed zone name |
| `recordAddress` | address of the wildcard record |
| `loggingFilters` | client → Cloud Logging filter for that client's sidecar (Envoy) errors, e.g. `trafficdirector.networks.getConfigs` denials |
| `proxyStatusCommands` | the `gcloud` commands that list fleet memberships and show the mesh proxies' config status (CSDS) |
| `uptimeChecks` | with monitoring on: client → service → the uptime check's name `projects/<p>/uptimeCheckConfigs/<id>` ([Monitoring](monitoring.md)) |
| `uptimeCheckExecutionsPerMonth` | with monitoring on: the check executions a 30-day month the settings produce |
"""


def _type(prop: dict[str, Any]) -> str:
    return {"boolean": "bool", "integer": "int", "array": "list", "object": "object"}.get(str(prop.get("type")), "string")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`" if text != "" else '`""`'


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rule(prop: dict[str, Any]) -> str:
    rule = prop.get("x-rule", "")
    text = (rule[0].upper() + rule[1:] + ".") if rule else ""
    if prop.get("examples"):
        text += f" Example: {_code(prop['examples'][0])}."
    return text


def _row(key: str, prop: dict[str, Any], required: bool = False, type_: str = "") -> str:
    default = _code(prop["default"]) if "default" in prop else ("**required**" if required else "unset")
    return f"| {key} | {type_ or _type(prop)} | {default} | {_cell(prop.get('description', ''))} {_cell(_rule(prop))} |"


def render() -> str:
    """The page: the schema's keys in its order, objects' fields under them (the cluster's in one row)."""
    props = schema.config_schema()["properties"]
    header = _HEADER.replace("{date}", regions.CLOUD_RUN_REGIONS_DATE).replace("{SETTINGS}", json.dumps(VSCODE_SETTINGS))
    lines = [header.rstrip("\n"), "",
             "| Key | Type | Default | Rules and meaning |", "| --- | --- | --- | --- |"]
    for key, prop in props.items():
        inner = prop.get("items", prop)
        fields = inner.get("properties", {}) if inner.get("type") == "object" else {}
        if key == "cloudrun-mesh:cluster":
            names = " / ".join(f"`.{f}`" if i else f"`{key}.{f}`" for i, f in enumerate(fields))
            rules = " ".join(f"`{f}`: {_rule(sub)}" for f, sub in fields.items())
            lines.append(f"| {names} | strings | unset | {_cell(prop['description'])} {_cell(rules)} |")
            continue
        if prop.get("type") != "object":
            lines.append(_row(f"`{key}`", prop, required=key.startswith("gcp:")))
        for field, sub in fields.items():
            name = f"{key.split(':', 1)[1]}[i].{field}" if prop.get("type") == "array" else f"{key}.{field}"
            lines.append(_row(f"`{name}`", sub, required=field in inner.get("required", ())))
    return "\n".join(lines) + "\n" + _FOOTER


if __name__ == "__main__":
    print(render(), end="")
