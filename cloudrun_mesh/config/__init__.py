"""Stack configuration: the user's contract.

The keys, their shapes, values and defaults are declared once, in the JSON Schema
``cloudrun_mesh/schemas/stack-config.schema.json``; it drives validation (``schema``), the reference
page (``python -m cloudrun_mesh.config.docs > docs/configuration.md``), Pulumi.yaml's scalar
declarations and editors (the stack files' `yaml-language-server` modeline). ``parse`` adds the rules
that relate keys to each other and normalises values into frozen dataclasses; ``load`` feeds it from
the engine, locates each problem in `Pulumi.<stack>.yaml` and refuses example principals at `up`.
Every problem is reported at once, before the program registers a single resource.
"""

from cloudrun_mesh.config.engine import load
from cloudrun_mesh.config.model import (
    _RFC1918,
    CLIENT_IMAGE,
    DEFAULT_ADDRESS,
    DEFAULT_CHANNEL,
    DEFAULT_CLIENTS,
    DEFAULT_INGRESS,
    DEFAULT_INJECTION_LABEL,
    DEFAULT_NETWORK,
    DEFAULT_REVISION,
    DEFAULT_SERVICE_PORT,
    DEFAULT_SERVICES,
    DEFAULT_SUFFIX,
    DEFAULT_TARGET_PORT,
    DEFAULT_TTL,
    DEFAULT_ZONE,
    FIELDS,
    INGRESS_SETTINGS,
    NS,
    OBJECT_KEYS,
    PUBLIC_MEMBERS,
    RESERVE,
    REVISION_LABEL,
    SAMPLE_IMAGE,
    SCALAR_DEFAULTS,
    SYSTEM_NAMESPACES,
    TOP_LEVEL_KEYS,
    UPTIME_PERIODS,
    UPTIME_REGIONS,
    ClientConfig,
    ClusterConfig,
    DnsConfig,
    MeshConfig,
    MonitoringConfig,
    Placeholder,
    ServiceConfig,
    StackConfig,
    network_path,
)
from cloudrun_mesh.config.problems import ConfigError, Problem
from cloudrun_mesh.config.rules import parse

__all__ = [
    "CLIENT_IMAGE", "DEFAULT_ADDRESS", "DEFAULT_CHANNEL", "DEFAULT_CLIENTS", "DEFAULT_INGRESS", "DEFAULT_INJECTION_LABEL",
    "DEFAULT_NETWORK", "DEFAULT_REVISION", "DEFAULT_SERVICES", "DEFAULT_SERVICE_PORT", "DEFAULT_SUFFIX",
    "DEFAULT_TARGET_PORT", "DEFAULT_TTL", "DEFAULT_ZONE", "FIELDS", "INGRESS_SETTINGS", "NS", "OBJECT_KEYS",
    "PUBLIC_MEMBERS", "RESERVE", "REVISION_LABEL", "SAMPLE_IMAGE", "SCALAR_DEFAULTS", "SYSTEM_NAMESPACES",
    "TOP_LEVEL_KEYS", "UPTIME_PERIODS", "UPTIME_REGIONS", "_RFC1918", "ClientConfig", "ClusterConfig", "ConfigError",
    "DnsConfig", "MeshConfig", "MonitoringConfig", "Placeholder", "Problem", "ServiceConfig", "StackConfig", "load",
    "network_path", "parse",
]
