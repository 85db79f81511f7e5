"""Gates a config must pass before it may replace the target's file (no I/O).

The YAML is read as a stream of parser events, never built into Python objects:
that is ten times faster than loading it, holds no more memory than its nesting
depth, and cannot be crashed or exhausted by a hostile document (30,000 levels of
nesting overflow the C loader's stack; a billion-laughs alias bomb expands without
end). The shape checks need only the top of the document and a few counts.

Walking every event in Python still costs ~120 ms per MiB. A plain document (see
plain_yaml) has nothing the walk polices past its top: libyaml's C parser judges its
syntax at a tenth of that, and the walk stops at its first rule or receiver.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from syncjob.errors import ContentRefused

RULE_TYPES = ("prometheus-rules", "vmalert")
MAX_DEPTH = 200  # Prometheus and Alertmanager configs nest about 10 deep
MAX_ALIAS_EXPANSION = 1_000_000  # nodes that aliases may add, counted as if copied

# Tags a config may carry explicitly; anything else (`!python/object`, `!custom`) is
# not a Prometheus or Alertmanager config, whatever it would construct to.
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map",
               "seq", "timestamp", "binary", "merge")}  # fmt: skip

# A node's path from the top: mapping keys, and _ITEM for a sequence's items. Not a string,
# so that no key (a `'*'` key, say) can pass for an item.
_ITEM = 0
_Path = tuple[str | int | None, ...]  # None: a key that is not a scalar

# Sequences whose items are what "alerting" means for each type: rules and receivers.
_RULES: _Path = ("groups", _ITEM, "rules")
_COUNTED: dict[_Path, str] = {_RULES: "rules", ("receivers",): "receivers"}
_ALERTING: dict[str, _Path] = {**dict.fromkeys(RULE_TYPES, _RULES), "alertmanager": ("receivers",)}


def check(
    content: bytes | BinaryIO,
    current: bytes | BinaryIO | None,
    config_type: str,
    allow_empty: bool,
) -> None:
    """Refuse content that is not a config of its type, or that empties the current one.

    Both are bytes or binary files, read as streams: a file is never held in memory.
    An upstream outage that serves `groups: []` must not wipe a fleet's alerting:
    removing every rule / receiver the current file has needs `allow_empty`.
    """
    if _blank(content):
        raise ContentRefused("source served an empty config")
    shape = _judge(content, config_type)
    if shape.top != "mapping":
        raise ContentRefused(f"the {config_type} config must be a YAML mapping, got {shape.top}")
    if config_type in RULE_TYPES and not shape.has_groups_list:
        raise ContentRefused(f"the {config_type} file must have a `groups` list")
    if allow_empty or current is None:
        return
    try:
        before = _alerting_size(read_shape(current, enough_for=config_type), config_type)
    except ContentRefused:
        return  # a broken current file has nothing to protect
    if before and not _alerting_size(shape, config_type):
        what = _COUNTED[_ALERTING[config_type]]
        raise ContentRefused(
            f"the new config has no {what} but the current one has some: refused "
            "(ALLOW_EMPTY / --allow-empty accepts it)"
        )


@contextmanager
def _rewound(content: bytes | BinaryIO) -> Iterator[None]:
    """Whatever the body reads of a file, put it back at its start for the next reader."""
    try:
        yield
    finally:
        if not isinstance(content, bytes):
            content.seek(0)


def _blank(content: bytes | BinaryIO) -> bool:
    """Nothing but whitespace; a file is read only as far as its first other byte."""
    if isinstance(content, bytes):
        return not content.strip()
    with _rewound(content):
        while chunk := content.read(1 << 16):
            if chunk.strip():
                return False
        return True


@dataclass
class Shape:
    top: str = "nothing"  # "mapping", "a list", "a scalar", or "nothing"
    has_groups_list: bool = False
    rules: int = 0  # read with `enough_for`: 1 for "some"
    receivers: int = 0


def _alerting_size(shape: Shape, config_type: str) -> int:
    path = _ALERTING.get(config_type)
    return getattr(shape, _COUNTED[path]) if path else 0


def _judge(content: bytes | BinaryIO, config_type: str) -> Shape:
    """The new document's shape, refusing all that read_shape refuses, the fast way if plain."""
    # Imported here: a pass that writes nothing compiles none of plain_yaml's patterns.
    from yaml import YAMLError, __with_libyaml__

    from syncjob import plain_yaml

    with _rewound(content):
        plain = __with_libyaml__ and plain_yaml.is_plain(content)
    if not plain:
        return read_shape(content)
    from yaml import CSafeLoader

    with _rewound(content):
        try:
            CSafeLoader(content).raw_parse()  # every event, none of them built into Python
        except YAMLError as exc:
            raise _invalid(exc) from None
    return read_shape(content, enough_for=config_type)


@dataclass
class _Node:
    """An open collection while the events stream by."""

    path: _Path
    is_mapping: bool
    anchor: str | None
    size: int = 1  # nodes in it so far, aliases counted as copies
    children: int = 0
    key: str | None = None  # the key whose value comes next (mappings)
    expecting_key: bool = True


def read_shape(content: bytes | BinaryIO, *, enough_for: str | None = None) -> Shape:
    """The document's shape, from parser events; ContentRefused if it is not sane YAML.

    `enough_for`, a config type: stop as soon as the shape answers what `check` asks of
    that type (its top, its `groups` list, whether it has any rule or receiver), a few
    lines into a 64 MiB file. What lies beyond is not judged: for the current file, and
    for a plain document whose syntax libyaml has already read through.
    """
    alerting_path = _ALERTING.get(enough_for) if enough_for else None
    # PyYAML costs ~18 ms to import: only passes that write pay for it.
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    shape, stack, anchors = Shape(), list[_Node](), dict[str, int]()
    documents, expansion = 0, 0
    try:
        for event in yaml.parse(content, Loader=loader):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise ContentRefused("source served invalid YAML: more than one document")
                continue
            if not isinstance(event, yaml.NodeEvent | yaml.CollectionEndEvent):
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                node = stack.pop()
                if not node.is_mapping and (counted := _COUNTED.get(node.path)):
                    setattr(shape, counted, getattr(shape, counted) + node.children)
                _finish(stack, anchors, node.anchor, node.size)
                continue
            # A node: scalar, alias, or the start of a collection.
            tag = getattr(event, "tag", None)
            if tag not in (None, "!") and tag not in _PLAIN_TAGS:
                raise ContentRefused(f"source served invalid YAML: unsupported tag {tag[:60]}")
            parent = stack[-1] if stack else None
            if parent is None:
                shape.top = (
                    "mapping" if isinstance(event, yaml.MappingStartEvent)
                    else "a list" if isinstance(event, yaml.SequenceStartEvent)
                    else "a scalar"
                )  # fmt: skip
                if enough_for and alerting_path is None:
                    return shape  # the top is all that is asked of this type
            if parent is not None and parent.is_mapping and parent.expecting_key:
                # A key. Prometheus and Alertmanager keys are plain words: a list or a
                # mapping as a key (`? [a, b]`) is not a config of theirs.
                if isinstance(event, yaml.CollectionStartEvent):
                    raise ContentRefused("source served YAML with a collection as a mapping key")
                parent.key = event.value if isinstance(event, yaml.ScalarEvent) else None
                parent.expecting_key = False
            elif parent is not None:
                parent.children += 1
                parent.expecting_key = True
                if parent.path == alerting_path and not parent.is_mapping:
                    setattr(shape, _COUNTED[alerting_path], 1)
                    return shape
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise ContentRefused(
                        f"source served invalid YAML: alias *{event.anchor} has no anchor"
                    )
                added = anchors[event.anchor]
                expansion += added
                if expansion > MAX_ALIAS_EXPANSION:
                    raise ContentRefused("YAML aliases expand too far (an alias bomb?)")
                _finish(stack, anchors, None, added)
            elif isinstance(event, yaml.CollectionStartEvent):
                path = _child_path(parent)
                if path == ("groups",) and isinstance(event, yaml.SequenceStartEvent):
                    shape.has_groups_list = True
                stack.append(_Node(path, isinstance(event, yaml.MappingStartEvent), event.anchor))
                if len(stack) > MAX_DEPTH:
                    raise ContentRefused(f"YAML nested more than {MAX_DEPTH} levels deep")
            else:
                _finish(stack, anchors, event.anchor, 1)
    except yaml.YAMLError as exc:
        raise _invalid(exc) from None
    return shape


def _child_path(parent: _Node | None) -> _Path:
    if parent is None:
        return ()
    return (*parent.path, parent.key if parent.is_mapping else _ITEM)


def _finish(stack: list[_Node], anchors: dict[str, int], anchor: str | None, size: int) -> None:
    """A node is complete: remember its size for aliases, and add it to its parent."""
    if anchor:
        anchors[anchor] = size
    if stack:
        stack[-1].size += size


def _invalid(exc: Any) -> ContentRefused:
    return ContentRefused(f"source served invalid YAML: {_where(exc)}")


def _where(exc: Any) -> str:
    """`problem at line L, column C` (PyYAML's first line is often only context)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
