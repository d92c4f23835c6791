"""The cloudrun-mesh policy pack: `pulumi preview --stack <stack> --policy-pack policy`.

The policies live in cloudrun_mesh_policies.py, importable (and tested) without the Pulumi CLI.
"""

from cloudrun_mesh_policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="cloudrun-mesh",
    description="Invariants of cloudrun-mesh: private mesh DNS, non-public mesh clients with their own identity, "
    "external-mesh routes beside their Services, protected production zones.",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=POLICIES,
)
