"""YAML read from files people drop or upload (request forms, directory files), bounded.

`yaml.SafeLoader` builds no Python objects from tags, but it still nests as deep as the
text does (its composer recurses: RecursionError) and follows aliases: a few hundred bytes
of "billion laughs" anchors become a structure with billions of paths that anything
walking or printing it (a line finder, an error message's repr) expands. So the composer
here counts nesting and aliases as it goes, and the finished node graph is measured as a
walk would see it before anything is constructed from it. Every refusal is a
`YamlTooComplex` (a `yaml.YAMLError` with a mark), so callers keep one except clause.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent

MAX_DEPTH = 16  # a form needs 3 (table, list, value), a directory file 5
MAX_ALIASES = 64  # enough for a shared list, far from a "billion laughs" expansion
MAX_ALIAS_GROWTH = 10_000  # nodes that aliases may add to a document, walked in full


class YamlTooComplex(yaml.YAMLError):
    """Refused for its shape, not its syntax; `problem_mark` says where, like PyYAML's."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class BoundedLoader(yaml.SafeLoader):
    """The safe loader with a bounded composer: no deep nesting, few aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlTooComplex(f"more than {MAX_ALIASES} aliases (*name)",
                                     self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlTooComplex(f"nested more than {MAX_DEPTH} levels deep",
                                     self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_growth(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases make a full walk much longer than the text, or
    that contains itself (an alias inside its own anchor): counted once per node, so the
    check is linear in the composed size however the aliases multiply."""
    walked: dict[int, int] = {}  # node -> nodes a full walk from it visits
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            walked[key] = 1 + sum(walked[id(c)] for c in _children(node))
            continue
        if key in walked:
            continue
        if key in open_nodes:
            raise YamlTooComplex("an alias refers to a node that contains it", node.start_mark)
        open_nodes.add(key)
        distinct += 1
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise YamlTooComplex("an alias refers to a node that contains it",
                                     child.start_mark)
            if id(child) not in walked:
                stack.append((child, False))
    if walked[id(root)] - distinct > MAX_ALIAS_GROWTH:
        raise YamlTooComplex(f"aliases (*name) repeat more than {MAX_ALIAS_GROWTH:,} "
                             "values", root.start_mark)


def compose_bounded(text: str, loader_class: type[BoundedLoader] = BoundedLoader,
                    ) -> tuple[yaml.Node | None, Any]:
    """(root node, data) of a single-document YAML text, or a `yaml.YAMLError`.

    The node is returned as well for callers that map values to lines."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_growth(node)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def load_bounded(text: str, loader_class: type[BoundedLoader] = BoundedLoader) -> Any:
    """The data of a single-document YAML text, or a `yaml.YAMLError`."""
    return compose_bounded(text, loader_class)[1]
