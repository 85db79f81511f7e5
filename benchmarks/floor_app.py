"""The floor of any CLI on this stack: a one-option typer app that imports urllib3 and exits.

With FLOOR_PUSH set it also imports prometheus_client, the floor for a pass that pushes.
"""

import os

import typer
import urllib3  # noqa: F401 - the import is the cost being measured

if os.environ.get("FLOOR_PUSH"):
    import prometheus_client  # noqa: F401

app = typer.Typer(add_completion=False)


@app.command()
def main(endpoint: str = "http://127.0.0.1") -> None:
    """Do nothing, as fast as the stack allows."""


if __name__ == "__main__":
    app()
