"""The check: every pair concurrently, retried with backoff, then one fetch2 follow-up per failed pair.

Time: no attempt starts unless it can end by the deadline (a first attempt starts if the deadline has
not passed), which leaves one request timeout after the deadline for the follow-up; the run therefore
ends within deadline + one request timeout whatever the servers do. At most ``MAX_WORKERS`` pairs are
checked at once; a pair no worker reached before the deadline is reported as not tried.

Retries: a 401 is never retried (the same token is refused every time). A 403 from Cloud Run itself
(the caller lacks roles/run.invoker) is retried only for ``INVOKER_GRACE`` seconds from the start:
a grant made by the `pulumi up` just before needs time to propagate, but a caller who was never
granted should not wait for the whole deadline. Everything else is retried until the deadline.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from dataclasses import dataclass, field
from typing import Optional

from cloudrun_mesh import exit_codes
from cloudrun_mesh.verify import diagnosis
from cloudrun_mesh.verify.probe import Outcome, attempt, fetch2_url
from cloudrun_mesh.verify.support import Budget, Printer
from cloudrun_mesh.verify.targets import Pair, Targets, origin
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
# Pairs checked at once (each with at most two request threads alive: see _Pool).
MAX_WORKERS = 32


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
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt_no - 1))  # float ** int: a float (int ** int may not be)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def _line(printer: Printer, stop: threading.Event, pair: Pair, what: str, outcome: Outcome) -> None:
    if stop.is_set():  # the summary is being printed: a straggler stays out of it
        return
    printer.line(f"{pair.label:<32} {what:<11} {outcome.code:<8} {outcome.ms:>6} ms  {outcome.note}")


class _Pool:
    """At most ``workers`` threads take the next due step of any pair: its first attempt, a retry once
    its back-off has passed, or its fetch2 follow-up. A pair waiting out its back-off holds no thread,
    so ten thousand pairs need no more threads than ten. A pair whose first attempt could not start
    before the deadline is reported as not tried."""

    def __init__(self, results: list[PairResult], targets: Targets, tokens: Tokens, budget: Budget, rng: random.Random,
                 printer: Printer, stop: threading.Event, grace: float, workers: int):
        self.targets, self.tokens, self.budget, self.rng = targets, tokens, budget, rng
        self.printer, self.stop, self.grace = printer, stop, grace
        self.cond = threading.Condition()
        self.queue: list[tuple[float, int, str, PairResult]] = []
        self.seq = itertools.count()
        self.busy = 0
        # Each request runs in a helper thread that may outlive its limit (a name lookup cannot be
        # interrupted); the slots keep those to two per worker.
        self.slots = threading.BoundedSemaphore(2 * workers)
        now = budget.clock()
        for r in results:
            heapq.heappush(self.queue, (now, next(self.seq), "attempt", r))
        self.threads = [threading.Thread(target=self._work, name=f"verify-{i}", daemon=True)
                        for i in range(min(workers, len(results)))]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(max(self.budget.hard_left(), 0.0))

    def _next(self) -> Optional[tuple[str, PairResult]]:
        with self.cond:
            while not self.stop.is_set():
                if not self.queue:
                    if self.busy == 0:
                        self.cond.notify_all()
                        return None
                    self.cond.wait(max(min(self.budget.hard_left(), 0.5), 0.001))
                    continue
                due = self.queue[0][0]
                now = self.budget.clock()
                if due > now:
                    # Nothing to do before ``due``: a test clock jumps there when no request is in flight.
                    if self.busy == 0 and self.budget.skip_to(due):
                        continue
                    self.cond.wait(min(due - now, max(self.budget.hard_left(), 0.001)))
                    continue
                _, _, kind, result = heapq.heappop(self.queue)
                self.busy += 1
                return kind, result
            return None

    def _done(self, again: Optional[tuple[float, str, PairResult]]) -> None:
        with self.cond:
            self.busy -= 1
            if again is not None:
                heapq.heappush(self.queue, (again[0], next(self.seq), again[1], again[2]))
            self.cond.notify_all()

    def _work(self) -> None:
        while True:
            task = self._next()
            if task is None:
                return
            kind, result = task
            again = None
            try:
                again = self._follow_up(result) if kind == "follow-up" else self._attempt(result)
            finally:
                self._done(again)

    def _request(self, result: PairResult, url: str, limit: float) -> Outcome:
        client = self.targets.clients[result.pair.client]
        # The token goes only to the origin it was minted for (targets.read_targets refuses the rest;
        # this is the last check before it leaves).
        if origin(url) != origin(client.base_url):
            return Outcome("connect", 0, error=f"not sent: {origin(url)} is not the token's audience")
        return attempt(url, self.tokens.get(client.base_url), limit, self.slots)

    def _attempt(self, result: PairResult) -> Optional[tuple[float, str, PairResult]]:
        pair, budget, timeout = result.pair, self.budget, self.budget.timeout
        # No first attempt starts after the deadline; each ends by the hard end.
        limit = min(timeout, budget.hard_left() - END_MARGIN)
        if self.stop.is_set() or limit <= 0 or (not result.outcomes and budget.left() <= 0):
            return None
        n = len(result.outcomes) + 1
        outcome = self._request(result, pair.url, limit)
        if result.outcomes:  # only the last answer's body is evidence: earlier ones keep their code
            result.outcomes[-1] = result.outcomes[-1].without_body()
        result.outcomes.append(outcome)
        _line(self.printer, self.stop, pair, f"attempt {n:>2}", outcome)
        if outcome.ok:
            return None
        if outcome.status == 401:
            result.stopped = "a 401 is not retried: the same token would be refused again"
            return self._then_follow_up(result)
        delay = backoff(n, self.rng)
        if diagnosis.cloud_run_refused(outcome) and budget.elapsed() + delay > self.grace:
            result.stopped = f"403 from Cloud Run for the {self.grace:g} s invoker grace"
            if not self.stop.is_set():
                self.printer.line(f"{pair.label:<32} stopped     {result.stopped}")
            return self._then_follow_up(result)
        if delay + timeout > budget.left():  # the next attempt could not end by the deadline
            return self._then_follow_up(result)
        return budget.clock() + delay, "attempt", result

    def _then_follow_up(self, result: PairResult) -> Optional[tuple[float, str, PairResult]]:
        last = result.last
        if last is not None and diagnosis.wants_follow_up(last):
            return self.budget.clock(), "follow-up", result
        return None

    def _follow_up(self, result: PairResult) -> Optional[tuple[float, str, PairResult]]:
        limit = min(self.budget.timeout, self.budget.hard_left() - END_MARGIN)
        if self.stop.is_set() or limit <= 0:
            return None
        base = self.targets.clients[result.pair.client].base_url
        result.follow_up = self._request(result, fetch2_url(base, result.pair.host, limit), limit)
        _line(self.printer, self.stop, result.pair, "fetch2", result.follow_up)
        return None


def check(targets: Targets, tokens: Tokens, budget: Budget, printer: Printer,
          rng: Optional[random.Random] = None, grace: Optional[float] = None, workers: Optional[int] = None) -> int:
    rng = rng or random.Random()
    grace = min(INVOKER_GRACE if grace is None else grace, budget.deadline)
    workers = max(1, MAX_WORKERS if workers is None else workers)
    results = [PairResult(p) for p in targets.pairs]
    printer.line(
        f"Checking {len(results)} pair{'s' if len(results) != 1 else ''} (Cloud Run client -> exported service) "
        f"with a token from {tokens.source}: retrying until {budget.deadline:g} s, {budget.timeout:g} s per request"
        + (f", {workers} at a time." if len(results) > workers else ".")
    )
    printer.line(f"A 403 from Cloud Run is retried for {grace:g} s (invoker grants propagate in about 2 minutes); "
                 "a 401 is not retried. A failed pair is asked once more through /fortio/fetch2/ for the reason.")
    stop = threading.Event()
    pool = _Pool(results, targets, tokens, budget, rng, printer, stop, grace, workers)
    try:
        pool.start()
        pool.join()
    except KeyboardInterrupt:
        stop.set()
        printer.line("Interrupted.")
        summarize(results, budget, printer)
        return EXIT_INTERRUPTED
    stop.set()
    with pool.cond:
        pool.cond.notify_all()
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
            printer.line(f"  FAIL  {r.pair.label:<32} not tried: no attempt fitted in the deadline")
    return good == len(results)
