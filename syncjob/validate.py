"""Gates a config must pass before it may replace the target's file.

One reader for every document. libyaml's C parser reads the whole stream through, building
nothing (~14 ms per MiB): that is the syntax check. Its events are looked at in Python only
as far as the shape needs: the top of the first document, what `groups` holds, and whether a
rule or receiver exists, a few lines into a 64 MiB file. Nothing here expands an alias or
constructs a tagged value, so neither is policed: the content is the target's checker's to
judge (promtool, amtool), then its reload's, which the pass verifies and rolls back.

syncjob's own checks, all of them (the README lists them too): YAML syntax; one document;
a mapping at the top (a rules file may also be empty or null: zero rules, as promtool
reads it); a rules file's `groups`, if there are other keys or it holds anything, is a list;
a read that costs far more than a document of its size should is refused (libyaml takes
quadratic time on flow collections nested thousands deep); and the empty guard.
"""

import io
import re
import time
from typing import Any, BinaryIO

from syncjob.errors import ContentRefused

RULE_TYPES = ("prometheus-rules", "vmalert")

# CPU seconds a read may take: a base, plus so much per MiB read so far; and the bytes a
# parser gets at each read, since the budget is looked at between reads and a bomb's cost
# grows with the square of what it reads at once. libyaml reads a MiB of config in ~14 ms,
# PyYAML's pure-Python parser in ~1.5 s; 20,000 nested `[` (20 KB) take libyaml a second,
# 4,000 take the pure-Python parser eight.
BUDGET_SECONDS = 0.25
PACE = {"libyaml": (0.15, 1 << 12), "python": (10.0, 1 << 8)}  # seconds per MiB, bytes

# A node's path from the top: mapping keys, and _ITEM for a sequence's items. Not a string,
# so that no key (a `'*'` key, say) can pass for an item.
_ITEM = 0
_Path = tuple[str | int | None, ...]  # None: a key that is not a scalar

# Sequences whose items are what "alerting" means for each type: rules and receivers.
_RULES: _Path = ("groups", _ITEM, "rules")
_ALERTING: dict[str, _Path] = {**dict.fromkeys(RULE_TYPES, _RULES), "alertmanager": ("receivers",)}
_WHAT = {_RULES: "rules", ("receivers",): "receivers"}

# What a plain scalar means null in YAML 1.1 and 1.2 (PyYAML's resolver, Go's yaml.v3).
_NULLS = {"", "~", "null", "Null", "NULL"}
_NULL_TAG = "tag:yaml.org,2002:null"


class Shape:
    """What the reader saw of a document. A plain class, as _Node below: a dataclass would
    cost every pass, written or not, its making at import."""

    __slots__ = ("alerting", "documents", "explicit", "groups", "other_keys", "top")

    def __init__(self) -> None:
        self.top = "nothing"  # "a mapping", "a list", "a scalar", "null" or "nothing"
        self.groups = "absent"  # what the top mapping's `groups` holds, in the same words
        self.other_keys = False  # the top mapping has keys besides `groups`
        self.alerting = False  # a rule or receiver exists (or may: a merge key or an alias)
        self.documents = 0
        self.explicit = False  # the first document starts with `---`


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
    rules = config_type in RULE_TYPES
    if not rules and _blank(content):  # promtool reads an empty rules file as zero rules
        raise ContentRefused("source served an empty config")
    shape = read(content, config_type)
    if shape.documents > 1:
        raise ContentRefused("source served invalid YAML: more than one document")
    if not (shape.top == "a mapping" or (rules and shape.top in ("null", "nothing"))):
        raise ContentRefused(f"the {config_type} config must be a YAML mapping, got {shape.top}")
    if rules and (
        shape.groups in ("a mapping", "a scalar") or (shape.groups == "absent" and shape.other_keys)
    ):
        raise ContentRefused(f"the {config_type} file must have a `groups` list")
    path = _ALERTING.get(config_type)
    if allow_empty or current is None or path is None or shape.alerting:
        return
    try:
        before = read(current, config_type, through=False)
    except ContentRefused:
        return  # a broken current file has nothing to protect
    if before.alerting:
        raise ContentRefused(
            f"the new config has no {_WHAT[path]} but the current one has some: refused "
            "(ALLOW_EMPTY / --allow-empty accepts it)"
        )


def _blank(content: bytes | BinaryIO) -> bool:
    """Nothing but whitespace; a file is read only as far as its first other byte."""
    if isinstance(content, bytes):
        return not content.strip()
    try:
        while chunk := content.read(1 << 16):
            if chunk.strip():
                return False
        return True
    finally:
        content.seek(0)


def read(content: bytes | BinaryIO, config_type: str, *, through: bool = True) -> Shape:
    """The document's shape; ContentRefused if it is not YAML.

    `through`: read every document to the end of the stream, which is the syntax check and
    counts the documents; without it (the current file), stop once the shape is known.
    A file is read from where it is and put back there.
    """
    # PyYAML costs ~18 ms to import: only passes that write pay for it.
    import yaml

    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    start = stream.tell()
    c_loader = getattr(yaml, "CSafeLoader", None) if yaml.__with_libyaml__ else None
    feed = _Feed(stream, *PACE["libyaml" if c_loader else "python"])
    parser: Any = (c_loader or yaml.SafeLoader)(feed)
    shape = Shape()
    try:
        _walk(parser, config_type, shape, yaml)
        if through:
            if c_loader and not feed.utf16:
                parser.raw_parse()  # the rest, at C speed; the feed counts the `---` lines
                feed.finish()
                implicit_first = shape.documents == 1 and not shape.explicit
                shape.documents = feed.document_starts + implicit_first
            else:  # libyaml's UTF-16 input, or no libyaml: each event comes to Python
                while (event := parser.get_event()) is not None:
                    shape.documents += isinstance(event, yaml.DocumentStartEvent)
    except yaml.YAMLError as exc:
        raise ContentRefused(f"source served invalid YAML: {_where(exc)}") from None
    finally:
        parser.dispose()
        stream.seek(start)
    return shape


class _Node:
    """An open collection while the events stream by."""

    __slots__ = ("expecting_key", "is_mapping", "key", "path")

    def __init__(self, path: _Path, is_mapping: bool) -> None:
        self.path, self.is_mapping = path, is_mapping
        self.key: str | None = None  # the key whose value comes next (mappings)
        self.expecting_key = True


def _walk(parser: Any, config_type: str, shape: Shape, yaml: Any) -> None:
    """Read events of the first document until `shape` answers what `check` asks of this type:
    the top for any type, and whether a rule or receiver exists for those that have them."""
    alerting = _ALERTING.get(config_type)
    stack: list[_Node] = []
    while (event := parser.get_event()) is not None:
        if isinstance(event, yaml.DocumentStartEvent):
            shape.documents, shape.explicit = 1, bool(event.explicit)
            continue
        if isinstance(event, yaml.DocumentEndEvent | yaml.StreamEndEvent):
            return  # the first document is all the shape needs
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue  # the stream's start
        parent = stack[-1] if stack else None
        if parent is None:
            shape.top = _what(event, yaml)
            if alerting is None:
                return
            path: _Path = ()
        elif parent.is_mapping and parent.expecting_key:
            parent.key = event.value if isinstance(event, yaml.ScalarEvent) else None
            parent.expecting_key = False
            if not parent.path:  # a key of the top mapping
                if parent.key == "<<":  # a merge key may bring `groups` or `receivers`
                    shape.alerting = True
                    return
                shape.other_keys |= parent.key != "groups"
            path = (*parent.path, None)  # a collection as a key: walked past
        else:
            parent.expecting_key = True
            if parent.path == alerting and not parent.is_mapping:
                shape.alerting = True  # the first rule or receiver
                return
            path = (*parent.path, parent.key if parent.is_mapping else _ITEM)
            if path == ("groups",):
                shape.groups = _what(event, yaml)
            if path == alerting and isinstance(event, yaml.AliasEvent):
                shape.alerting = True  # a list anchored elsewhere: not followed
                return
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append(_Node(path, isinstance(event, yaml.MappingStartEvent)))


def _what(event: Any, yaml: Any) -> str:
    if isinstance(event, yaml.MappingStartEvent):
        return "a mapping"
    if isinstance(event, yaml.SequenceStartEvent):
        return "a list"
    if isinstance(event, yaml.AliasEvent):
        return "an alias"
    plain_null = event.tag is None and event.implicit[0] and event.value in _NULLS
    return "null" if plain_null or event.tag == _NULL_TAG else "a scalar"


# `---` at the start of a line, followed by a blank or a line break (libyaml's: LF, CR, NEL,
# LS, PS), is a document start in any valid stream: inside a quoted scalar it is an error,
# and it ends a plain or block scalar. So, once libyaml has read the stream without error,
# counting these lines counts the documents (each starts one; `...` alone starts none).
# Compiled on first use (re caches it): a pass that writes nothing never needs it.
_DOCUMENT_START = rb"---(?=[ \t\r\n]|\xc2\x85|\xe2\x80[\xa8\xa9]|\Z)"
_LINE_BREAKS = (b"\n", b"\r", b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")
_BOM = b"\xef\xbb\xbf"
_BLOCK = 1 << 16


class _Feed:
    """The stream as a parser reads it, a slice at a time: on the way it counts the lines that
    start a document, and refuses a read that costs far more than its size should."""

    def __init__(self, stream: BinaryIO, per_mib: float, slice_size: int) -> None:
        self._stream = stream
        self._slice = slice_size
        self._block = b""
        self._at = 0  # where the next slice starts in _block
        self._given = 0
        self._per_byte = per_mib / (1 << 20)
        self._started = time.thread_time()
        self._tail = b""  # the end of what was scanned, kept for a `---` across two blocks
        self._from = 0  # where scanning resumes in _tail + the next block
        self._at_start = True  # _tail starts at the stream's first byte
        self._ended = False
        self.document_starts = 0
        self.utf16 = False

    def read(self, size: int = -1, /) -> bytes:
        spent = time.thread_time() - self._started
        if spent > BUDGET_SECONDS + self._per_byte * self._given:
            raise ContentRefused(
                f"source served YAML that takes too long to read ({spent:.1f}s of CPU for "
                f"{self._given >> 10} KiB): flow collections nested thousands deep?"
            )
        if self._at >= len(self._block):
            self._block, self._at = self._stream.read(_BLOCK), 0
            if not self._given:
                self.utf16 = self._block.startswith((b"\xff\xfe", b"\xfe\xff"))
            self._scan(self._block)
        size = self._slice if size < 0 else min(size, self._slice)
        piece = self._block[self._at : self._at + size]
        self._at += len(piece)
        self._given += len(piece)
        return piece

    def finish(self) -> None:
        """The stream has been read: scan its last bytes (a `---` at its very end)."""
        self._scan(b"")

    def _scan(self, block: bytes) -> None:
        if self._ended:
            return
        self._ended = not block
        text = self._tail + block
        # A `---` needs up to 3 bytes after it (LS, PS) to be judged, up to 3 before it.
        limit = len(text) if self._ended else max(self._from, len(text) - 5)
        for match in re.compile(_DOCUMENT_START).finditer(text, self._from):
            at = match.start()
            if at >= limit:
                break
            first = self._at_start and (at == 0 or (at == 3 and text.startswith(_BOM)))
            if first or any(text.endswith(brk, 0, at) for brk in _LINE_BREAKS):
                self.document_starts += 1
        cut = max(0, limit - 3)
        self._tail, self._from = text[cut:], limit - cut
        self._at_start &= cut == 0


def _where(exc: Any) -> str:
    """`problem at line L, column C` (PyYAML's first line is often only context)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
