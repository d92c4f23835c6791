"""Reads stack files under a time and memory bound, in a child process: `python stackfile_bounds.py DIR STACK...`.

For each stack, one JSON line: how the read ended (`read`, `refused` with a StackFileError, `crash`
with any other exception, `timeout`, `memory`), the message or values, the seconds it took and the
peak of Python allocations (tracemalloc). The parent (tests/test_stackfile.py) sets the child's
address-space limit, so a guard that is removed ends as `memory` or `timeout` here, never as a
machine out of memory.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

from cloudrun_mesh import stackfile

TIME_LIMIT = 5.0  # seconds a single read may take before it is stopped and reported as `timeout`


def _alarm(signum: int, frame: Any) -> None:
    raise TimeoutError


def read_one(project: Path, stack: str) -> dict[str, Any]:
    result: dict[str, Any] = {"stack": stack}
    tracemalloc.start()
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    try:
        result["values"] = stackfile.stack_config(stack, project_dir=project)
        result["outcome"] = "read"
    except stackfile.StackFileError as exc:
        result["outcome"], result["message"] = "refused", str(exc)
    except TimeoutError:
        result["outcome"] = "timeout"
    except MemoryError:
        result["outcome"] = "memory"
    except BaseException as exc:  # what the test looks for: anything but a StackFileError
        result["outcome"], result["message"] = "crash", "".join(traceback.format_exception(exc))[-2000:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        result["seconds"] = time.perf_counter() - start
        result["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGALRM, _alarm)
    project = Path(argv[0])
    for stack in argv[1:]:
        print(json.dumps(read_one(project, stack)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
