"""Gates a config must pass before it may replace the target's file (no I/O)."""

from typing import Any

from syncjob.errors import ContentRefused

RULE_TYPES = ("prometheus-rules", "vmalert")


def check(content: bytes, current: bytes | None, config_type: str, allow_empty: bool) -> None:
    """Refuse content that is not a config of its type, or that empties the current one.

    An upstream outage that serves `groups: []` must not wipe a fleet's alerting:
    removing every rule / receiver the current file has needs `allow_empty`.
    """
    doc = _parse(content, config_type)
    if allow_empty or current is None:
        return
    before = _alerting_size(_load_quietly(current), config_type)
    if before and not _alerting_size(doc, config_type):
        what = "rules" if config_type in RULE_TYPES else "receivers"
        raise ContentRefused(
            f"the new config has no {what} but the current one has {before}: refused "
            "(ALLOW_EMPTY / --allow-empty accepts it)"
        )


def _parse(content: bytes, config_type: str) -> dict[str, Any]:
    if not content.strip():
        raise ContentRefused("source served an empty config")
    doc = _load(content)
    if not isinstance(doc, dict):
        raise ContentRefused(f"a {config_type} config must be a YAML mapping, got {_kind(doc)}")
    if config_type in RULE_TYPES and not isinstance(doc.get("groups"), list):
        raise ContentRefused(f"a {config_type} file must have a `groups` list")
    return doc


def _load(content: bytes) -> Any:
    # PyYAML costs ~18 ms to import: only passes that write pay for it.
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(content, Loader=loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ContentRefused(f"source served invalid YAML: {first_line}") from None
    except (ValueError, RecursionError) as exc:  # e.g. non-UTF-8 bytes, absurd nesting
        raise ContentRefused(f"source served unreadable content: {type(exc).__name__}") from None


def _load_quietly(content: bytes) -> Any:
    try:
        return _load(content)
    except ContentRefused:
        return None  # a broken current file has nothing to protect


def _alerting_size(doc: Any, config_type: str) -> int:
    """Rules in a rules file, receivers in an Alertmanager config; 0 for anything else."""
    if not isinstance(doc, dict):
        return 0
    if config_type in RULE_TYPES:
        groups = doc.get("groups")
        if not isinstance(groups, list):
            return 0
        return sum(len(g.get("rules") or []) for g in groups if isinstance(g, dict))
    if config_type == "alertmanager":
        receivers = doc.get("receivers")
        return len(receivers) if isinstance(receivers, list) else 0
    return 0


def _kind(doc: object) -> str:
    return {list: "a list", str: "a string", type(None): "nothing"}.get(
        type(doc), type(doc).__name__
    )
