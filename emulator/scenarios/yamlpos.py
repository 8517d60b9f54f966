"""YAML → plain Python values that remember where every mapping key, value and list item was written.

Only `yaml.compose` with the safe loader is used: no Python objects are ever constructed from tags.
Duplicate keys (which PyYAML accepts silently) and syntax errors are reported with their position.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from emulator.scenarios.problems import Pos, ProblemLog

_STANDARD_TAG = "tag:yaml.org,2002:"
_TYPED_SCALARS = {_STANDARD_TAG + name for name in ("int", "float", "bool", "null")}
_MERGE_TAG = _STANDARD_TAG + "merge"
_KNOWN_TAGS = {
    _STANDARD_TAG + name for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
}
START = Pos(1, 1)
_MAX_EXPANDED_NODES = 200_000  # guards against alias bombs ("billion laughs")


class YMap(dict):
    """A dict that knows its own position and the positions of its keys and values."""

    def __init__(self, pos: Pos = START) -> None:
        super().__init__()
        self.pos = pos
        self.key_pos: dict[Any, Pos] = {}
        self.value_pos: dict[Any, Pos] = {}

    def key_at(self, key: Any) -> Pos:
        return self.key_pos.get(key, self.pos)

    def at(self, key: Any) -> Pos:
        return self.value_pos.get(key, self.pos)


class YList(list):
    """A list that knows its own position and the position of every item."""

    def __init__(self, pos: Pos = START) -> None:
        super().__init__()
        self.pos = pos
        self.item_pos: list[Pos] = []

    def at(self, index: int) -> Pos:
        return self.item_pos[index] if 0 <= index < len(self.item_pos) else self.pos


def pos_of(node: Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def to_plain(value: Any) -> Any:
    """Drop the position bookkeeping: YMap → dict, YList → list, recursively."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


# libyaml's safe composer when PyYAML was built with it (about 10x faster on large recorded files);
# a file it rejects is composed again by the pure-Python loader, whose messages say more.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str) -> Any:
    try:
        return yaml.compose(text, Loader=_FAST_LOADER)  # noqa: S506 - compose never constructs objects
    except yaml.YAMLError:
        return yaml.compose(text, Loader=yaml.SafeLoader)  # noqa: S506


def load_yaml(text: str, log: ProblemLog) -> Any:
    """The document's value; None for an empty document or when the YAML cannot be parsed (see `log`)."""
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as error:
        log.add(_error_pos(error), _syntax_message(error))
        return None
    except yaml.YAMLError as error:  # reader errors: invalid characters
        log.add(_reader_pos(text, error), f"invalid YAML: {error}")
        return None
    if root is None:
        return None
    try:
        return _Builder(log).build(root)
    except _TooBig:
        log.add(pos_of(root), "the document expands to too many values (are aliases nested too deeply?)")
        return None


def _error_pos(error: yaml.MarkedYAMLError) -> Pos:
    mark = error.problem_mark or error.context_mark
    return Pos(mark.line + 1, mark.column + 1) if mark else Pos()


def _syntax_message(error: yaml.MarkedYAMLError) -> str:
    problem = error.problem or "syntax error"
    if "expected a single document" in f"{problem} {error.context}":
        return "invalid YAML: a scenario file holds a single document, found a second one ('---')"
    message = f"invalid YAML: {problem}"
    if error.context:
        mark = error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        message += f" ({error.context}{where})"
    return message


def _reader_pos(text: str, error: yaml.YAMLError) -> Pos:
    index = getattr(error, "position", 0) or 0
    before = text[:index]
    return Pos(before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1)


class _TooBig(Exception):
    pass


class _Builder:
    def __init__(self, log: ProblemLog) -> None:
        self.log = log
        self.constructor = SafeConstructor()
        self.done: dict[int, tuple[Any, int]] = {}  # node id → (value, number of nodes in it)
        self.active: set[int] = set()
        self.expanded = 0

    def build(self, node: Node) -> Any:
        key = id(node)
        if key in self.done:  # an alias: share the value, but count its size against the budget
            value, size = self.done[key]
            self._spend(size)
            return value
        if key in self.active:
            self.log.add(pos_of(node), "a YAML alias refers to the mapping or list that contains it")
            return None
        self.active.add(key)
        before = self.expanded
        self._spend(1)
        value = self._build_new(node)
        self.active.discard(key)
        self.done[key] = (value, self.expanded - before)
        return value

    def _spend(self, count: int) -> None:
        self.expanded += count
        if self.expanded > _MAX_EXPANDED_NODES:
            raise _TooBig

    def _build_new(self, node: Node) -> Any:
        if node.tag not in _KNOWN_TAGS and node.tag != "!":
            tag = node.tag.replace(_STANDARD_TAG, "!!")
            self.log.add(pos_of(node), f"unsupported YAML tag '{tag}'; only plain YAML values are allowed")
        if isinstance(node, MappingNode):
            return self._mapping(node)
        if isinstance(node, SequenceNode):
            items = YList(pos_of(node))
            for child in node.value:
                items.append(self.build(child))
                items.item_pos.append(pos_of(child))
            return items
        assert isinstance(node, ScalarNode)
        return self._scalar(node)

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag in _TYPED_SCALARS:
            try:
                return self.constructor.construct_object(node)
            except (ValueError, KeyError, TypeError, OverflowError, IndexError):  # `!!int hi`, `!!int ""`
                self.log.add(pos_of(node), f"{node.value!r} cannot be read as {node.tag.rsplit(':', 1)[-1]}")
                return str(node.value)
        return str(node.value)  # strings, and timestamps/binary kept as the text written

    def _mapping(self, node: MappingNode) -> YMap:
        result = YMap(pos_of(node))
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self.log.add(pos_of(key_node), "a mapping key must be a plain value, not a mapping or a list")
                continue
            key = self._scalar(key_node)
            if key in result:
                first = result.key_pos[key]
                self.log.add(pos_of(key_node), f"duplicate key '{key}' (first defined at line {first.line})")
                continue
            result[key] = self.build(value_node)
            result.key_pos[key] = pos_of(key_node)
            result.value_pos[key] = pos_of(value_node)
        for merge_node in merges:
            self._merge(result, merge_node)
        return result

    def _merge(self, result: YMap, merge_node: Node) -> None:
        """`<<: *base` or `<<: [*a, *b]`: keys written in the mapping itself win, then earlier sources."""
        sources = merge_node.value if isinstance(merge_node, SequenceNode) else [merge_node]
        for source_node in sources:
            source = self.build(source_node)
            if not isinstance(source, YMap):
                self.log.add(pos_of(source_node), "a merge key ('<<') needs a mapping or a list of mappings")
                continue
            for key, value in source.items():
                if key not in result:
                    result[key] = value
                    result.key_pos[key] = source.key_at(key)
                    result.value_pos[key] = source.at(key)
