"""`python -m cloudrun_mesh verify`: prove the route works after `pulumi up`, and say why when it does not.

One module per concern: ``cli`` (flags and exit codes), ``targets`` (the stack outputs), ``tokens``
(identity tokens), ``probe`` (one bounded request to fortio), ``check`` (retries, the fetch2
follow-up and the summary), ``diagnosis`` (one finding per distinct cause), and ``support`` (the
clock, bounded calls and token-redacting output they share).

Only the standard library speaks HTTP here, and the Pulumi SDK is never loaded: the check starts
fast and runs anywhere Python does. Tokens are sent only in the X-Serverless-Authorization header
(Cloud Run strips their signature before fortio sees them: see ``probe``) and never printed.
"""

from cloudrun_mesh.verify.cli import add_parser, run

__all__ = ["add_parser", "run"]
