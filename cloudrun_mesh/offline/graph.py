"""The deploy-order graph of a recorded program: which resource waits for which.

The engine creates a resource only after everything it depends on exists: its explicit and
property dependencies, and the provider instance it uses. Component resources do no work; a
dependency on a component stands for its custom descendants.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from cloudrun_mesh.offline.harness import STACK_TYPE, Registration


def _provider_urn(reference: str) -> str:
    # Provider references are "<urn>::<id>".
    return reference.rsplit("::", 1)[0] if reference else ""


def dependency_graph(registrations: Iterable[Registration]) -> dict[str, set[str]]:
    """URN -> URNs of the custom resources it waits for (custom resources only)."""
    regs = {r.urn: r for r in registrations if r.type != STACK_TYPE}
    children: dict[str, list[str]] = {}
    for r in regs.values():
        children.setdefault(r.parent, []).append(r.urn)

    def custom_closure(urn: str) -> set[str]:
        reg = regs.get(urn)
        if reg is None:
            return set()
        if reg.custom:
            return {urn}
        out: set[str] = set()
        for child in children.get(urn, []):
            out |= custom_closure(child)
        return out

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


def critical_path(registrations: Iterable[Registration]) -> list[str]:
    """The longest chain of resources that must be created one after another (URNs, first to last)."""
    graph = dependency_graph(registrations)

    @functools.cache
    def longest_to(urn: str) -> tuple[str, ...]:
        best: tuple[str, ...] = ()
        for dep in sorted(graph.get(urn, ())):
            chain = longest_to(dep)
            if len(chain) > len(best):
                best = chain
        return best + (urn,)

    best: tuple[str, ...] = ()
    for urn in sorted(graph):
        chain = longest_to(urn)
        if len(chain) > len(best):
            best = chain
    return list(best)
