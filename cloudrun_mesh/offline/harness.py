"""Evaluate the program under Pulumi's mock engine and record what the real engine would receive.

One mechanism for two users: the test suite and the offline plan. Each evaluation runs in its own
thread with its own event loop and an empty ``contextvars`` context, so nothing (settings, root
stack, config, pending RPCs) leaks from one evaluation into the next. The evaluation waits for every
outstanding RPC and resolves every stack output, so a failing ``apply`` cannot pass unnoticed.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import runpy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

# How stack files are read (bounds, duplicate keys, scalars as the Pulumi CLI reads them): stackfile.
from cloudrun_mesh import sdk_private
from cloudrun_mesh.offline import fakes
from cloudrun_mesh.stackfile import StackFileError as StackFileError
from cloudrun_mesh.stackfile import UnknownStackError as UnknownStackError
from cloudrun_mesh.stackfile import _read_yaml
from cloudrun_mesh.stackfile import stack_config as stack_config

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROGRAM = PROJECT_DIR / "__main__.py"
STACK_TYPE = "pulumi:pulumi:Stack"
# What a preview cannot know is shown as a marker, never as a plausible value: the engine's
# unknowns, and what the offline plan would otherwise take from the fake cloud (fakes.STAND_INS).
UNKNOWN = "<known after deploy>"
SECRET = "<secret>"
MARKERS = frozenset({UNKNOWN, *fakes.MARKERS})


def is_marker(value: Any) -> bool:
    """True for a value the offline plan could not know (a whole-value marker)."""
    return isinstance(value, str) and value in MARKERS


class DuplicateUrnError(RuntimeError):
    """Two registrations with one URN: the mock engine accepts it, the real engine does not."""


@dataclass
class Registration:
    """One RegisterResource (or ReadResource) request, as the engine receives it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    read: bool
    id: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool
    provider: str
    delete_before_replace: bool = False
    replace_on_changes: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    retain_on_delete: bool = False
    aliases: list[str] = field(default_factory=list)
    import_id: str = ""
    """The ``import`` resource option: adopt the existing object with this id instead of creating it."""

    def as_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "read": self.read,
            **({"id": self.id} if self.read else {}),
            "inputs": self.inputs,
            "dependencies": self.dependencies,
            "propertyDependencies": self.property_dependencies,
            "protect": self.protect,
            "provider": self.provider,
            "deleteBeforeReplace": self.delete_before_replace,
            "replaceOnChanges": self.replace_on_changes,
            "ignoreChanges": self.ignore_changes,
            "retainOnDelete": self.retain_on_delete,
            "aliases": self.aliases,
            "importId": self.import_id or None,
        }


@dataclass
class ProgramRun:
    stack: str
    project: str
    preview: bool
    config: dict[str, str]
    registrations: list[Registration]
    outputs: dict[str, Any]
    error: Optional[BaseException]
    logs: list[tuple[str, str]]

    # -- queries used by tests, the plan and the policy pack -------------------------------------
    def resources(self, type_: Optional[str] = None) -> list[Registration]:
        """Registrations other than the stack itself, optionally of one type token."""
        return [r for r in self.registrations if r.type != STACK_TYPE and (type_ is None or r.type == type_)]

    def one(self, type_: str, name: Optional[str] = None) -> Registration:
        found = [r for r in self.resources(type_) if name is None or r.name == name]
        if len(found) != 1:
            raise AssertionError(f"expected exactly one {type_} {name or ''}, found {[r.name for r in found]}")
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        for r in self.registrations:
            if r.urn == urn:
                return r
        raise KeyError(urn)

    def raise_error(self) -> ProgramRun:
        if self.error is not None:
            raise self.error
        return self


def _plain(value: Any, stand_ins: Optional[tuple[tuple[str, str], ...]] = None) -> Any:
    """Engine values as plain JSON-able data; unknowns and secrets become visible markers.

    With ``stand_ins`` (a preview), every value the fake cloud invented is replaced by its marker,
    whole or inside a longer string (a kubeconfig, a mesh name): what the plan shows is either
    the program's own value or a marker, never a plausible literal.
    """
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    if isinstance(value, Unknown) or value is Unknown or value == rpc.UNKNOWN:
        return UNKNOWN
    if isinstance(value, Mapping):
        if sdk_private.is_secret_envelope(value):
            return SECRET
        return {k: _plain(v, stand_ins) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, stand_ins) for v in value]
    if isinstance(value, float) and value.is_integer():
        # The wire format has one number type; integers must stay integers in manifests.
        return int(value)
    if stand_ins and isinstance(value, str):
        for literal, marker in stand_ins:
            if literal in value:
                value = marker if value == literal else value.replace(literal, marker)
    return value


class _NotPlain(Exception):
    """A stack output that only ``Output.from_input`` can lift."""


async def _resolved(value: Any) -> Any:
    """The value ``Output.from_input(value).future(with_unknowns=True)`` gives, for a settled stack output.

    ``from_input`` creates an Output per element, and a client x service map of URLs has thousands:
    known Outputs, dicts with string keys, lists, tuples and scalars are unwrapped directly, and
    anything else (an unknown, an input type, an awaitable, a resource) goes through the SDK.
    """
    import pulumi

    try:
        return await _lift(value, pulumi.Output)
    except _NotPlain:
        return await pulumi.Output.from_input(value).future(with_unknowns=True)


async def _lift(value: Any, output_type: type[Any]) -> Any:
    if isinstance(value, output_type):
        output: Any = value
        if not await output.is_known():
            # As the engine shows it: this value unknown, its known neighbours (the client and
            # service keys of fetchUrls, say) as they are.
            return UNKNOWN
        return await _lift(await output.future(with_unknowns=True), output_type)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise _NotPlain
        return {k: await _lift(v, output_type) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [await _lift(v, output_type) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise _NotPlain


class _EnginePhaseGC:
    """Cheaper garbage collection while the SDK works through the registrations of a program.

    A full collection walks every object of the imported SDK modules and of the program's resources
    (0.2-0.3 s a pass at 1,000 services), and thousands of registrations in flight trigger one every
    few hundred: that was a quarter of a 1,000-service evaluation, and grew faster than the stack.
    So once the program body has returned, what is alive then (modules, resources, their Outputs,
    all kept until the evaluation ends) is frozen out of collections, and the older generations are
    collected a tenth as often; young objects as before. Imports (the body) run with the usual
    settings; they return once no evaluation is in this phase.
    """

    _lock = threading.Lock()
    _active = 0
    _saved: tuple[int, ...] = ()

    def __init__(self) -> None:
        self.entered = False

    def enter(self) -> None:
        cls = type(self)
        with cls._lock:
            if cls._active == 0:
                cls._saved = gc.get_threshold()
                gen0, gen1, *older = cls._saved
                gc.set_threshold(gen0, gen1 * 10, *older)
                gc.freeze()
            cls._active += 1
        self.entered = True

    def exit(self) -> None:
        if not self.entered:
            return
        self.entered = False
        cls = type(self)
        with cls._lock:
            cls._active -= 1
            if cls._active == 0:
                gc.unfreeze()
                gc.set_threshold(*cls._saved)


def _monitor_class() -> Any:
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor

    def _in_worker_loop(method: Callable[..., Any]) -> Callable[..., Any]:
        # The mock monitor is called on the SDK's worker threads and needs an event loop there,
        # which the SDK would create on demand and nobody would close. Each worker thread gets one
        # for the whole evaluation (a loop per call costs ~15% of a large evaluation), and
        # close_worker_loops closes them all once the executor has shut down.
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_event_loop_policy().get_event_loop()
            except RuntimeError:  # no loop on this worker thread yet
                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
                with self._lock:
                    self._worker_loops.append(loop)
            return method(self, *args, **kwargs)

        return wrapper

    class RecordingMonitor(MockMonitor):
        def __init__(self, mocks: Any, stand_ins: Optional[tuple[tuple[str, str], ...]] = None) -> None:
            super().__init__(mocks)
            self.stand_ins = stand_ins
            self.registrations: list[Registration] = []
            self._claimed: set[str] = set()
            self._lock = threading.Lock()
            self._worker_loops: list[asyncio.AbstractEventLoop] = []

        def close_worker_loops(self) -> None:
            with self._lock:
                loops, self._worker_loops = self._worker_loops, []
            for worker_loop in loops:
                worker_loop.close()

        def make_urn(self, parent: str, type_: str, name: str) -> str:
            # As the real engine builds it: the parent's full qualified type, except the root stack's.
            # (The mock's own version keeps only the last segment and includes the stack type.)
            from pulumi.runtime.settings import get_project, get_stack

            if parent:
                parent_type = parent.split("::")[2]
                if parent_type != STACK_TYPE:
                    type_ = f"{parent_type}${type_}"
            return "urn:pulumi:" + "::".join([get_stack(), get_project(), type_, name])

        def _claim(self, urn: str) -> None:
            # Registrations arrive on several threads at once: check and claim in one step.
            with self._lock:
                duplicate = urn in self._claimed
                self._claimed.add(urn)
                if duplicate:
                    raise DuplicateUrnError(
                        f"duplicate resource URN {urn}: two resources share a type, parent and name. "
                        "The real engine rejects this; give each a distinct name."
                    )

        def _inputs(self, request_struct: Any) -> dict[str, Any]:
            plain: dict[str, Any] = _plain(rpc.deserialize_properties(request_struct, keep_unknowns=True), self.stand_ins)
            return plain

        @_in_worker_loop
        def RegisterResource(self, request: Any) -> Any:
            urn = self.make_urn(request.parent, request.type, request.name)
            if request.type != STACK_TYPE:
                self._claim(urn)
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
            state = {}
            if request.type != STACK_TYPE:
                state = self.resources[urn].state
            reg = Registration(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                read=False,
                id=response.id,
                inputs=self._inputs(request.object),
                state=_plain(state, self.stand_ins),
                dependencies=sorted(set(request.dependencies)),
                property_dependencies={
                    k: sorted(set(v.urns)) for k, v in sorted(request.propertyDependencies.items()) if v.urns
                },
                protect=bool(request.protect),
                provider=request.provider,
                delete_before_replace=bool(request.deleteBeforeReplace),
                replace_on_changes=sorted(request.replaceOnChanges),
                ignore_changes=sorted(request.ignoreChanges),
                retain_on_delete=bool(request.retainOnDelete),
                aliases=sorted(
                    [a.urn for a in request.aliases if a.urn] + list(request.aliasURNs)
                    + [f"name={a.spec.name};parent={a.spec.parentUrn}" for a in request.aliases if not a.urn and a.spec.name]
                ),
                import_id=request.importId,
            )
            with self._lock:
                self.registrations.append(reg)
            return response

        @_in_worker_loop
        def Invoke(self, request: Any) -> Any:
            return super().Invoke(request)  # type: ignore[no-untyped-call]

        @_in_worker_loop
        def ReadResource(self, request: Any) -> Any:
            urn = self.make_urn(request.parent, request.type, request.name)
            self._claim(urn)
            response = super().ReadResource(request)  # type: ignore[no-untyped-call]
            reg = Registration(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=True,
                read=True,
                id=request.id,
                inputs=self._inputs(request.properties),
                state=_plain(self.resources[urn].state, self.stand_ins),
                dependencies=sorted(set(request.dependencies)),
                property_dependencies={},
                protect=False,
                provider=request.provider,
            )
            with self._lock:
                self.registrations.append(reg)
            return response

    return RecordingMonitor


def _fake_cloud(preview: bool, config: Mapping[str, str]) -> Any:
    import pulumi

    class FakeCloud(pulumi.runtime.Mocks):
        """Providers answer with realistic values from ``fakes``; a preview leaves them unknown."""

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[Optional[str], dict[str, Any]]:
            reading = args.custom is None  # the mock monitor marks reads this way
            computed = fakes.computed(args.typ, args.name, args.inputs, config)
            if preview and not reading:
                return None, dict(args.inputs)
            return fakes.resource_id(args.typ, args.name, args.inputs, computed), {**args.inputs, **computed}

        def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
            return fakes.invoke(args.token, args.args, config)

    return FakeCloud()


# --------------------------------------------------------------------------------------------
# Configuration exactly as the CLI would hand it to the program.
# --------------------------------------------------------------------------------------------


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    return str(_read_yaml(project_dir / "Pulumi.yaml")["name"])


def stacks(project_dir: Path = PROJECT_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


# --------------------------------------------------------------------------------------------


def run_program(
    stack: Optional[str] = "dev",
    *,
    config: Optional[Mapping[str, Any]] = None,
    preview: bool = False,
    program: Optional[Callable[[], Any]] = None,
    project_dir: Path = PROJECT_DIR,
    timeout: float = 120.0,
) -> ProgramRun:
    """Evaluate ``__main__.py`` (or ``program``) for a stack under the mock engine.

    ``config`` overrides stack-file values (full keys such as ``cloudrun-mesh:dns``; Python values are
    encoded as the CLI would). Errors are captured in ``ProgramRun.error``, never swallowed.
    """
    values = stack_config(stack, config, project_dir)
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=_evaluate,
        args=(stack or "test", project_name(project_dir), values, preview, program, project_dir, result),
        name="pulumi-mock-evaluation",
        daemon=True,
    )
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"program evaluation did not finish within {timeout} s")
    if "crash" in result:
        raise result["crash"]
    run: ProgramRun = result["run"]
    return run


def _evaluate(stack: str, project: str, values: dict[str, str], preview: bool, program: Optional[Callable[[], Any]],
              project_dir: Path, result: dict[str, Any]) -> None:
    # Runs in a fresh thread: an empty contextvars context and a new event loop.
    engine_phase = _EnginePhaseGC()
    try:
        import pulumi
        from pulumi.runtime.stack import run_pulumi_func

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        logs: list[tuple[str, str]] = []
        # Secondary failures of a failed evaluation (futures nobody awaited) go to the run's log,
        # not to stderr; the first error is what ProgramRun.error reports.
        loop.set_exception_handler(lambda _loop, ctx: logs.append(("ERROR", str(ctx.get("exception") or ctx.get("message")))))

        def _record(level: str) -> Callable[..., None]:
            def log(msg: Any, *args: Any, **_kwargs: Any) -> None:
                logs.append((level, str(msg) % args if args else str(msg)))  # as LogRecord.getMessage

            return log

        # All the mock engine needs of a logger: a debug record per registration (thousands) is
        # appended as is, without a LogRecord and a stack walk each, nor a logger left registered.
        logger = SimpleNamespace(**{name: _record(name.upper()) for name in ("debug", "info", "warning", "error")})

        # Pulumi keeps its runtime state in context properties whose *default* object is shared by
        # every thread that never set it (the pending-output set among them): a failed evaluation
        # would leave tasks of a closed event loop for the next one. Give this evaluation its own.
        sdk_private.reset_runtime_settings()
        stand_ins = fakes.stand_ins() if preview else None
        monitor = _monitor_class()(_fake_cloud(preview, values), stand_ins)
        pulumi.runtime.set_all_config(dict(values), [])
        pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview, logger=logger, monitor=monitor)  # type: ignore[arg-type]

        def body() -> None:
            if program is not None:
                program()
            else:
                runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
            engine_phase.enter()

        error: Optional[BaseException] = None
        try:
            sdk_private.sync_await(run_pulumi_func(body))
        except BaseException as exc:
            error = exc

        outputs: dict[str, Any] = {}
        root = pulumi.runtime.get_root_resource()
        if error is None and root is not None:
            try:
                for name, value in sorted(root.outputs.items()):  # type: ignore[attr-defined]
                    outputs[name] = _plain(sdk_private.sync_await(_resolved(value)), stand_ins)
            except BaseException as exc:
                error = exc
        try:
            # After a failure, registrations still in flight are abandoned, as the real engine does.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_default_executor())
            monitor.close_worker_loops()
        finally:
            loop.close()
            engine_phase.exit()
        result["run"] = ProgramRun(
            stack=stack,
            project=project,
            preview=preview,
            config=dict(values),
            registrations=list(monitor.registrations),
            outputs=outputs,
            error=error,
            logs=logs,
        )
    except BaseException as exc:
        engine_phase.exit()
        result["crash"] = exc
