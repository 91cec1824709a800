"""celpy's parse trees: reading names out of them, and reshaping them once at compile time
(balanced ``&&``/``||`` chains against deep recursion, pass-through levels removed for
speed). Kept apart from daemon.conditions.expr, which compiles and evaluates.
"""

from __future__ import annotations

import re
from typing import Any

import lark

Node = lark.Tree[Any]


def single(tree: Any) -> Any:
    """Descend single-child wrappers (expr -> ... -> primary) to the node that matters."""
    while isinstance(tree, lark.Tree) and len(tree.children) == 1 and tree.data != "ident":
        tree = tree.children[0]
    return tree


def ident(tree: Any) -> str | None:
    node = single(tree)
    return str(node.children[0]) if isinstance(node, lark.Tree) and node.data == "ident" else None


def string_literal(tree: Any) -> str | None:
    node = single(tree)
    if isinstance(node, lark.Token) and node.type == "STRING_LIT":
        match = re.fullmatch(r"'([^'\\]*)'|\"([^\"\\]*)\"", str(node))
        if match:
            return match[1] if match[1] is not None else match[2]
    return None


def case_field(node: Node) -> str | None:
    """The name in ``case.name`` or ``case['name']``; None for any other node."""
    if node.data not in ("member_dot", "member_index") or ident(node.children[0]) != "case":
        return None
    key = node.children[1]
    return str(key) if node.data == "member_dot" else string_literal(key)


def where(node: Node | lark.Token | None) -> str:
    """' at column N' when the node knows its place, else ''."""
    column = node.column if isinstance(node, lark.Token) else getattr(
        getattr(node, "meta", None), "column", None)
    return f" at column {column}" if column else ""


def balance(root: Node) -> None:
    """Regroup long ``&&``/``||`` chains as balanced trees, so 500 terms don't exhaust the stack.

    celpy parses ``a && b && c`` left-deep; both operators are associative in CEL.
    """
    stack = [root]
    while stack:
        node = stack.pop()
        for i, child in enumerate(node.children):
            if not isinstance(child, lark.Tree):
                continue
            if child.data not in ("conditionaland", "conditionalor") or len(child.children) < 2:
                stack.append(child)
                continue
            terms, pending = [], [child]
            while pending:
                part = pending.pop()
                if isinstance(part, lark.Tree) and part.data == child.data \
                        and len(part.children) == 2:
                    pending += [part.children[1], part.children[0]]
                else:
                    terms.append(part)
            node.children[i] = build(child.data, terms, child.meta)
            stack += terms


def build(op: str, terms: list[Any], meta: Any) -> Any:
    half = len(terms) // 2
    return terms[0] if half == 0 else lark.Tree(
        op, [build(op, terms[:half], meta), build(op, terms[half:], meta)], meta)


# Grammar levels that, with one child, only hand their child's value up (celpy's
# evaluator visits each: `case.amount` alone sits under eight of them).
_PASS_THROUGH = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition",
                           "multiplication", "unary", "member"})


def collapse(root: Node) -> None:
    """Drop single-child pass-through levels below the root, about halving the nodes the
    interpreter walks per evaluation. Outcomes are unchanged; tests/unit/
    test_expr_collapse.py compares every shape against the full tree."""
    stack = [root]
    while stack:
        node = stack.pop()
        for i, child in enumerate(node.children):
            while (isinstance(child, lark.Tree) and child.data in _PASS_THROUGH
                   and len(child.children) == 1 and isinstance(child.children[0], lark.Tree)):
                child = child.children[0]
            if isinstance(child, lark.Tree):
                node.children[i] = child
                stack.append(child)


def external(node: Node) -> str | None:
    """'factor.x' or 'budget.x' for a member of those maps; None for any other node."""
    if node.data != "member_dot" or ident(node.children[0]) not in ("factor", "budget"):
        return None
    return f"{ident(node.children[0])}.{node.children[1]}"
