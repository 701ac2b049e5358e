"""Which person each fact of a batch is about: one lifecycle per person (pure).

A batch's facts name their person by a key (a CRM outcome by several: lead key, email's,
phone's); the consumer's aliases (`leadflow.aliases`) say which person each key means
now. `fold` applies the batch's facts and merges in order: a fact goes to the lifecycle of
the person its keys name, a merge folds the lifecycles of the keys it absorbs into the
survivor's (`lifecycle.combine`), and their rows go.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from leadflow.aliases import AliasBook, Merge, person_of
from leadflow_sla.reporting.lifecycle import Fact, Lifecycle, apply, combine

# What a batch applies, in order: a fact about the person a key names (or one of several
# keys, best first: `leadflow.aliases.person_of`), or a merge of keys into one person.
Step = tuple[str | Sequence[str], Fact] | Merge


@dataclass
class Folded:
    """What a batch changed: the lifecycles to write, by the person's key, and the keys whose
    rows go (folded into another person's lifecycle, or loaded empty and left empty)."""

    lifecycles: dict[str, Lifecycle] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)


def fold(
    lifecycles: Mapping[str, Lifecycle], steps: Iterable[Step], aliases: AliasBook | None = None
) -> Folded:
    """The lifecycles the steps touched after applying them in order, and the rows to drop.

    A key missing from `lifecycles` starts empty; a person with several facts sees each one
    after the ones before it, as it would one event at a time. A merge (recorded in
    `aliases` as it comes) moves the lifecycles of the keys it absorbs into the survivor's;
    a loaded lifecycle of a key that already means another person is moved there too. A
    loaded lifecycle left empty (a key an outcome named besides its person's) is dropped.
    """
    book = aliases if aliases is not None else AliasBook()
    current = dict(lifecycles)
    folded = Folded()

    def absorb(key: str, root: str) -> None:
        gone = current.pop(key, None)
        if gone is not None:
            folded.dropped.add(key)
            current[root] = combine(current.get(root) or Lifecycle(root), gone)
            folded.lifecycles.pop(key, None)
            folded.lifecycles[root] = current[root]

    for key in sorted(lifecycles):
        if (root := book.canonical(key)) != key:
            absorb(key, root)
    for step in steps:
        if isinstance(step, Merge):
            for key, root in sorted(book.apply(step).items()):
                absorb(key, root)
            continue
        named, fact = step
        keys = [named] if isinstance(named, str) else named
        person = person_of(keys, book.resolve(keys), lambda k: _known(current.get(k)))
        current[person] = apply(current.get(person) or Lifecycle(person), fact)
        folded.lifecycles[person] = current[person]
    for key in lifecycles:
        if key in current and key not in folded.lifecycles and not _known(current[key]):
            folded.dropped.add(key)
    return folded


def _known(lifecycle: Lifecycle | None) -> bool:
    """Whether any fact of the person arrived (a locked row may still be empty)."""
    return lifecycle is not None and lifecycle != Lifecycle(lifecycle.lead_key)
