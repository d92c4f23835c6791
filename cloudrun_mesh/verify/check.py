"""The check: every pair concurrently, retried with backoff, then one fetch2 follow-up per failed pair.

Time: no attempt starts unless it can end by the deadline (the first always runs), which leaves one
request timeout after the deadline for the follow-up; the run therefore ends within deadline + one
request timeout whatever the servers do.

Retries: a 401 is never retried (the same token is refused every time). A 403 from Cloud Run itself
(the caller lacks roles/run.invoker) is retried only for ``INVOKER_GRACE`` seconds from the start:
a grant made by the `pulumi up` just before needs time to propagate, but a caller who was never
granted should not wait for the whole deadline. Everything else is retried until the deadline.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Optional

from cloudrun_mesh import exit_codes
from cloudrun_mesh.verify import diagnosis
from cloudrun_mesh.verify.probe import Outcome, attempt, fetch2_url
from cloudrun_mesh.verify.support import Budget, Printer
from cloudrun_mesh.verify.targets import Pair, Targets
from cloudrun_mesh.verify.tokens import Tokens

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = exit_codes.OK, exit_codes.FAILED, exit_codes.INTERRUPTED
BACKOFF_BASE = 0.5
BACKOFF_CAP = 10.0
# IAM allow-policy changes "typically propagate in 2 minutes, but could potentially take 7 minutes
# or longer" (https://cloud.google.com/iam/docs/access-change-propagation): the grace covers the
# typical case; the diagnosis says to run again when a grant is more recent than that.
INVOKER_GRACE = 120.0
# Each request ends this long before the hard end, so its line is printed before the summary.
END_MARGIN = 0.05


@dataclass
class PairResult:
    pair: Pair
    outcomes: list[Outcome] = field(default_factory=list)
    follow_up: Optional[Outcome] = None  # /fortio/fetch2/ after the last failed attempt
    stopped: str = ""  # why retrying ended before the deadline, when it did

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and self.outcomes[-1].ok

    @property
    def last(self) -> Optional[Outcome]:
        return self.outcomes[-1] if self.outcomes else None


def backoff(attempt_no: int, rng: random.Random) -> float:
    """Exponential with equal jitter: between half and all of min(cap, base * 2^(n-1))."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt_no - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def _line(printer: Printer, stop: threading.Event, pair: Pair, what: str, outcome: Outcome) -> None:
    if stop.is_set():  # the summary is being printed: a straggler stays out of it
        return
    printer.line(f"{pair.label:<32} {what:<11} {outcome.code:<8} {outcome.ms:>6} ms  {outcome.note}")


def _check_pair(result: PairResult, token: str, base_url: str, budget: Budget, rng: random.Random,
                printer: Printer, stop: threading.Event, grace: float) -> None:
    pair, timeout = result.pair, budget.timeout
    n = 0
    while not stop.is_set():
        limit = min(timeout, budget.hard_left() - END_MARGIN)
        if limit <= 0:
            break
        n += 1
        outcome = attempt(pair.url, token, limit)
        result.outcomes.append(outcome)
        _line(printer, stop, pair, f"attempt {n:>2}", outcome)
        if outcome.ok:
            return
        if outcome.status == 401:
            result.stopped = "a 401 is not retried: the same token would be refused again"
            break
        delay = backoff(n, rng)
        if diagnosis.cloud_run_refused(outcome) and budget.elapsed() + delay > grace:
            result.stopped = f"403 from Cloud Run for the {grace:g} s invoker grace"
            if not stop.is_set():
                printer.line(f"{pair.label:<32} stopped     {result.stopped}")
            break
        if delay + timeout > budget.left():  # the next attempt could not end by the deadline
            break
        stop.wait(delay)
    last = result.last
    limit = min(timeout, budget.hard_left() - END_MARGIN)
    if last is not None and not stop.is_set() and diagnosis.wants_follow_up(last) and limit > 0:
        result.follow_up = attempt(fetch2_url(base_url, pair.host, limit), token, limit)
        _line(printer, stop, pair, "fetch2", result.follow_up)


def check(targets: Targets, tokens: Tokens, budget: Budget, printer: Printer,
          rng: Optional[random.Random] = None, grace: Optional[float] = None) -> int:
    rng = rng or random.Random()
    grace = min(INVOKER_GRACE if grace is None else grace, budget.deadline)
    results = [PairResult(p) for p in targets.pairs]
    printer.line(
        f"Checking {len(results)} pair{'s' if len(results) != 1 else ''} (Cloud Run client -> exported service) "
        f"with a token from {tokens.source}: retrying until {budget.deadline:g} s, {budget.timeout:g} s per request."
    )
    printer.line(f"A 403 from Cloud Run is retried for {grace:g} s (invoker grants propagate in about 2 minutes); "
                 "a 401 is not retried. A failed pair is asked once more through /fortio/fetch2/ for the reason.")
    stop = threading.Event()
    workers = []
    for r in results:
        client = targets.clients[r.pair.client]
        w = threading.Thread(target=_check_pair, name=f"verify {r.pair.label}", daemon=True,
                             args=(r, tokens.get(client.base_url), client.base_url, budget, rng, printer, stop, grace))
        w.start()
        workers.append(w)
    try:
        for w in workers:
            w.join(max(budget.hard_left(), 0.0))
    except KeyboardInterrupt:
        stop.set()
        printer.line("Interrupted.")
        summarize(results, budget, printer)
        return EXIT_INTERRUPTED
    stop.set()
    if summarize(results, budget, printer):
        return EXIT_OK
    for block in diagnosis.diagnose_all([r for r in results if not r.ok], targets, tokens, grace):
        printer.line()
        for line in block:
            printer.line(line)
    return EXIT_FAILED


def summarize(results: list[PairResult], budget: Budget, printer: Printer) -> bool:
    good = sum(r.ok for r in results)
    printer.line()
    printer.line(f"Summary: {good} of {len(results)} pairs answered 200 in {budget.elapsed():.1f} s.")
    for r in results:
        last, n = r.last, len(r.outcomes)
        if r.ok and last:
            printer.line(f"  ok    {r.pair.label:<32} 200 on attempt {n} ({last.ms} ms)")
        elif last:
            which = f"the last of {n} attempts" if n > 1 else "its only attempt"
            printer.line(f"  FAIL  {r.pair.label:<32} {last.code} on {which}")
        else:
            printer.line(f"  FAIL  {r.pair.label:<32} no attempt fitted in the deadline")
    return good == len(results)
