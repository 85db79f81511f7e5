"""Whether a YAML document is plain: clear, from its bytes alone, of everything that
`validate.read_shape` walks the parser's events to police.

That walk refuses what libyaml accepts but a config must not carry: anchors and aliases
(an alias bomb), tags, directives, a second document, a collection as a mapping key,
nesting deeper than MAX_DEPTH. It does so in Python, one event at a time: ~120 ms per
MiB, twenty times the cost of fetching the bytes. A config as AlertAgent renders it uses
none of those, and this scan proves it at C speed (one bytes.translate and searches that
start on a literal byte, a few ms per MiB). A plain document then needs only libyaml's
C parser to judge its syntax, and the walk only as far as its first rule.

The scan is conservative: a plain document may fail it (a line of a multi-line
expression that starts with `*`) and go the slow way, but a document the walk would
refuse never passes it. Why each pattern is enough is said beside it; tests/
test_plain_yaml.py holds the scan to the walk on generated documents.
"""

import io
import re
from collections.abc import Iterator
from typing import BinaryIO

# Block collections nest by indentation: a collection inside another starts at a greater
# column, but for a sequence under a mapping key, which may share the key's column. So
# block nesting is at most twice the column a collection starts at, and that column is at
# most the length of its line's run of indentation and `-`, `?`, `:` indicators
# (`  - - key: v`). Refusing runs of MAX_RUN bounds it; a plain flow collection (below)
# adds at most two levels (`[a: b]` is a sequence holding a one-pair mapping).
MAX_RUN = 64
MAX_NESTING = 2 * MAX_RUN + 2  # the deepest a plain document can nest

# Bytes scanned at a time. A line longer than about twice that is not scanned: the walk,
# which streams, reads it.
_BLOCK = 1 << 18

# libyaml also breaks lines at NEL, LS and PS, and a byte-order mark may start a document
# or switch to UTF-16 (0xFE and 0xFF appear in no UTF-8 text): rare enough to leave to the
# walk rather than teach the patterns below. CR is a line break too: it is read as LF.
_UNSCANNED = re.compile(rb"\xc2\x85|\xe2\x80[\xa8\xa9]|\xef\xbb\xbf|[\xfe\xff]")

# At the start of a line: a second document (`---`, `...`), a directive (`%`, written
# `%%` for the formatting below), or a run of MAX_RUN indentation and indicators. A first
# line's `---` (the one document's start) is blanked before this search.
_LINE_STARTS = re.compile(rb"\n(?:---|\.\.\.|%%|[ \t?:-]{%d})" % MAX_RUN)

# With spaces and tabs deleted, each byte mapped to its class: a line break `;`, a colon
# `:`, `-` or `,` as `-`, `?`, an opening bracket `[`, a closing one `]`, a node property
# (`&` anchor, `*` alias, `!` tag) `&`, a quote or `#` (either may begin text that libyaml
# reads otherwise: a quoted scalar, a comment) `"`, and anything else `a`. A search that
# clears a flow collection must stop at `"`: `[a, # ]` leaves the collection open.
_CLASS_OF = dict(zip(b"\n:-,?[{]}&*!\"'#", b';:--?[[]]&&&"""', strict=True))
_CLASSES = bytes(_CLASS_OF.get(byte, ord("a")) for byte in range(256))
_SPACES = b" \t"

# Where a node may start, right after a line break or an indicator (spaces deleted), these
# open something only the walk can judge. Elsewhere they are text: `a * b`, `x != y`,
# `up{job="a"}[5m]`, `"{{ $labels.x }}"`. Each search starts on its literal byte.
_NOT_PLAIN = [
    re.compile(p)
    for p in (
        rb"&(?<=[;:\-?\[]&)",  # an anchor, an alias or a tag
        rb"\?(?<=[;:\-?\[]\?)",  # an explicit key, which may be a collection
        # A flow collection that does not close on its line before any bracket, quote,
        # comment or break: it may nest, or hold a key that is one.
        rb"\[(?<=[;:\-?]\[)(?![^\[\]\";]*\])",
        # A flow collection as a mapping key: its `:` may come after more of the line
        # (`[]a: b` reads as the key `[]`, then fails), never on another line. Only the
        # last `]` before it matters: stopping at the next `]` keeps the search linear.
        rb"\][^;\]]*[:?]",
    )
]


def is_plain(content: bytes | BinaryIO) -> bool:
    """Whether the document provably has none of what the event walk refuses.

    A file is read from where it is, a block at a time; the caller rewinds it.
    """
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    try:
        return all(_plain(block, first=i == 0) for i, block in enumerate(_lines(stream)))
    except _LineTooLong:
        return False


class _LineTooLong(Exception):
    pass


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """Blocks of whole lines, so that no pattern straddles two blocks."""
    rest = b""
    while block := stream.read(_BLOCK):
        cut = block.rfind(b"\n") + 1
        if not cut:
            rest += block
            if len(rest) > _BLOCK:
                raise _LineTooLong
            continue
        yield rest + block[:cut]
        rest = block[cut:]
    if rest:
        yield rest


def _plain(block: bytes, *, first: bool) -> bool:
    if b"\r" in block:
        block = block.replace(b"\r", b"\n")  # CRLF reads as an empty line more: harmless
    if not block.isascii() and _UNSCANNED.search(block):
        return False
    if first and block.startswith(b"---"):
        block = b"   " + block[3:]  # same columns, and what follows still starts a node
    lines = b"\n" + block
    if _LINE_STARTS.search(lines):
        return False
    marks = lines.translate(_CLASSES, _SPACES)
    return not any(pattern.search(marks) for pattern in _NOT_PLAIN)
