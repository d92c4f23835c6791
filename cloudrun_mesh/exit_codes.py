"""Exit codes of `python -m cloudrun_mesh` commands, one meaning each, shared by every command.

They follow the conventions shells and CI already read: 0 success, 1 the thing checked failed, 2 a
usage or input mistake (argparse uses 2 too), 130 interrupted (128 + SIGINT).
"""

OK = 0
FAILED = 1  # plan: the program failed; policy: a mandatory policy is violated; verify: a route failed
USAGE = 2  # a user mistake: bad flags, stack file, base plan or outputs file; nothing was done
FAIL_ON = 4  # plan --fail-on: the diff has an operation the caller refused
INTERRUPTED = 130  # Ctrl-C
