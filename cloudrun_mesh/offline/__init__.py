"""The offline engine: the program evaluated under Pulumi's mock engine, and what is built on it.

``harness`` runs the program with ``pulumi.runtime.set_mocks`` and records every RegisterResource
request; ``fakes`` answers them as the providers would (markers where a value is only known after
deploy); ``graph`` orders them; ``plan`` prints and writes the plan; ``plan_diff`` compares two plans
with the ForceNew facts in ``replacements``; ``plan_report`` renders Markdown and Mermaid; ``policy``
runs the policy pack on the registrations. ``python -m cloudrun_mesh plan|policy`` is the entry point.
"""
