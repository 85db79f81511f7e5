"""Keep syncjob's own secrets out of the text it keeps: the log and the state file.

A served config can make a local tool quote a local file: `rule_files: [<token file>]`
makes `promtool check config` print ``cannot unmarshal !!str `s3cr3t-k3y` `` (go-yaml
quotes a value of up to 10 characters whole, the first 7 characters of a longer one).
So the content of every credentials file syncjob reads, and every prefix of it of
MIN_PREFIX characters or more, is replaced by MASK; a URL's password by `***`.

`scrub` is pure; `secrets` reads the files, and is called only on a failure path, so a
pass that changes nothing pays nothing for it.
"""

import re
from collections.abc import Iterable, Iterator

from syncjob import credentials
from syncjob.errors import UsageError
from syncjob.settings import Settings

MASK = "[redacted]"
# go-yaml shows 7 characters of a long value; 6 leaves a margin, and is long enough
# that ordinary words are rarely a credential's first characters.
MIN_PREFIX = 6

# scheme://userinfo@ ; the userinfo runs to the last '@' before the host, like urlsplit
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s@]*(?:@[^/?#\s@]*)*)@")


def _without_password(url: "re.Match[str]") -> str:
    """user:*** (or *** alone: a userinfo without a colon may be a token), the shape
    transport.redacted gives the URLs syncjob names itself."""
    user, colon, _ = url[2].partition(":")
    return f"{url[1]}{user}:***@" if colon else f"{url[1]}***@"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret and each of its prefixes of MIN_PREFIX or more characters
    replaced by MASK, and each URL's password by ***.

    Each find of a secret is extended as far as it matches (longest first), and
    overlapping finds of several secrets become one MASK. A secret that holds '[' or ']',
    or whose prefix is in MASK itself, may show around or inside a MASK: credentials are
    not made of those.
    """
    merged: list[list[int]] = []
    for start, end in sorted(
        span for secret in set(secrets) if secret for span in _found(text, secret)
    ):
        if merged and start <= merged[-1][1]:  # overlapping or touching: one MASK
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if merged:
        kept, at = [], 0
        for start, end in merged:
            kept += [text[at:start], MASK]
            at = end
        kept.append(text[at:])
        text = "".join(kept)
    return _USERINFO.sub(_without_password, text)


def _found(text: str, secret: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each place where `secret`, or a long enough prefix of it, starts.

    A scan for the prefix of MIN_PREFIX characters, each find extended as far as it
    matches (longest first), the next scan starting where that find ends: the finds do
    not overlap, so the whole scan is linear in the text. A later start inside a find
    would leave only a middle piece of the secret, never a prefix: a prefix there would be
    a head the next scan finds.
    """
    head = secret[:MIN_PREFIX]
    start = text.find(head)
    while start != -1:
        end, limit = start + len(head), min(len(text), start + len(secret))
        while end < limit and text[end] == secret[end - start]:
            end += 1
        yield start, end
        start = text.find(head, end)


def secrets(settings: Settings) -> list[str]:
    """What syncjob's credentials are right now: the token variable and the files' content
    (a basic-auth file's `user:password` whole, and its password). An unreadable file
    gives nothing: the request that needs it reports that."""
    found = [settings.token or ""]
    for path in (settings.token_file, settings.pushgateway_token_file):
        found += _lines(_read(path))
    for path in (settings.basic_auth_file, settings.pushgateway_basic_auth_file):
        for line in _lines(_read(path)):
            found += [line, line.partition(":")[2]]
    return [secret for secret in found if secret]


def _lines(content: str) -> list[str]:
    """The whole (what the requests send), and each line of a file of several."""
    whole = content.strip()
    lines = [line.strip() for line in whole.splitlines()]
    return [whole, *lines] if len(lines) > 1 else [whole]


def _read(path: str | None) -> str:
    """The secret in `path` as the requests read it; "" when it cannot be read (the
    request that needs it says why)."""
    if not path:
        return ""
    try:
        return credentials.read(path)  # capped, and a FIFO or a device is refused unread
    except UsageError:
        return ""
