"""Gates a config must pass before it may replace the target's file."""

from typing import Any

from syncjob.errors import ContentRefused


def check_shape(content: bytes, config_type: str) -> None:
    """The content parses as YAML and has the shape of its type, or ContentRefused."""
    if not content.strip():
        raise ContentRefused("source served an empty config")
    # PyYAML costs ~18 ms to import: only passes that write pay for it.
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(content, Loader=loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ContentRefused(f"source served invalid YAML: {first_line}") from None
    except (ValueError, RecursionError) as exc:  # e.g. non-UTF-8 bytes, absurd nesting
        raise ContentRefused(f"source served unreadable content: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise ContentRefused(f"a {config_type} config must be a YAML mapping, got {_kind(doc)}")
    if config_type in ("prometheus-rules", "vmalert") and not isinstance(doc.get("groups"), list):
        raise ContentRefused(f"a {config_type} file must have a `groups` list")


def _kind(doc: object) -> str:
    return {list: "a list", str: "a string", type(None): "nothing"}.get(
        type(doc), type(doc).__name__
    )
