"""The README is the manual: it must name every setting and every exit code as the code does."""

from pathlib import Path

import pytest

from syncjob.errors import MEANINGS
from syncjob.settings import SETTINGS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env)
def test_every_setting_is_in_the_settings_table(setting):
    assert f"| `{setting.env}` | `{setting.flag}` |" in README


@pytest.mark.parametrize(("code", "meaning"), MEANINGS.items(), ids=lambda v: str(v))
def test_every_exit_code_is_in_the_table(code, meaning):
    assert f"\n| {int(code)} | " in README


def test_the_quick_start_is_two_commands():
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = quick_start.split("```sh", 1)[1].split("```", 1)[0].strip().splitlines()
    assert [c.split("#")[0].strip() for c in commands] == [
        "pip install . && syncjob demo",
        "pip install tox && tox",
    ]
