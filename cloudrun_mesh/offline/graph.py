"""The deploy-order graph of a recorded program: which resource waits for which.

The engine creates a resource only after everything it depends on exists: its explicit and
property dependencies, and the provider instance it uses. Component resources do no work; a
dependency on a component stands for its custom descendants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from cloudrun_mesh.offline.harness import STACK_TYPE


def _provider_urn(reference: str) -> str:
    # Provider references are "<urn>::<id>".
    return reference.rsplit("::", 1)[0] if reference else ""


class _Node(Protocol):
    """What the graph reads of a registration (harness.Registration, or a resource of a plan)."""

    @property
    def urn(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def parent(self) -> str: ...
    @property
    def custom(self) -> bool: ...
    @property
    def dependencies(self) -> Sequence[str]: ...
    @property
    def property_dependencies(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def provider(self) -> str: ...


def dependency_graph(registrations: Iterable[_Node]) -> dict[str, set[str]]:
    """URN -> URNs of the custom resources it waits for (custom resources only). Iterative, and each
    component's custom descendants are computed once: a deep or wide tree (a large base plan) costs
    time in proportion to its size, never the interpreter's stack."""
    regs = {r.urn: r for r in registrations if r.type != STACK_TYPE}
    children: dict[str, list[str]] = {}
    for r in regs.values():
        if r.parent != r.urn:
            children.setdefault(r.parent, []).append(r.urn)
    closures: dict[str, frozenset[str]] = {}

    def custom_closure(urn: str) -> frozenset[str]:
        if urn in closures:
            return closures[urn]
        reg = regs.get(urn)
        if reg is None:
            return frozenset()
        if reg.custom:
            return frozenset({urn})
        out: set[str] = set()
        stack, seen = [urn], {urn}
        while stack:
            for child in children.get(stack.pop(), []):
                if child in seen:
                    continue
                seen.add(child)
                if child in closures:
                    out |= closures[child]
                elif regs[child].custom:
                    out.add(child)
                else:
                    stack.append(child)
        closures[urn] = frozenset(out)
        return closures[urn]

    graph: dict[str, set[str]] = {}
    for r in regs.values():
        if not r.custom:
            continue
        deps = set(r.dependencies)
        for urns in r.property_dependencies.values():
            deps |= set(urns)
        provider = _provider_urn(r.provider)
        if provider in regs:
            deps.add(provider)
        waits: set[str] = set()
        for d in deps:
            waits |= custom_closure(d)
        waits.discard(r.urn)
        graph[r.urn] = waits
    return graph


def critical_path(registrations: Iterable[_Node]) -> list[str]:
    """The longest chain of resources that must be created one after another (URNs, first to last).
    Computed in dependency order without recursion; a cycle (which the engine would refuse) ends the
    chain where it closes."""
    graph = dependency_graph(registrations)
    best_to: dict[str, tuple[str, ...]] = {}
    for start in sorted(graph):
        if start in best_to:
            continue
        # Post-order walk: a node is settled once everything it waits for is.
        stack: list[tuple[str, bool]] = [(start, False)]
        on_path: set[str] = set()
        while stack:
            urn, expanded = stack.pop()
            if urn in best_to:
                continue
            if expanded:
                on_path.discard(urn)
                best: tuple[str, ...] = ()
                for dep in sorted(graph.get(urn, ())):
                    chain = best_to.get(dep, ())
                    if len(chain) > len(best):
                        best = chain
                best_to[urn] = best + (urn,)
                continue
            on_path.add(urn)
            stack.append((urn, True))
            for dep in sorted(graph.get(urn, ()), reverse=True):
                if dep not in best_to and dep not in on_path:
                    stack.append((dep, False))
    longest: tuple[str, ...] = ()
    for urn in sorted(graph):
        if len(best_to[urn]) > len(longest):
            longest = best_to[urn]
    return list(longest)
