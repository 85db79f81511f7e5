"""The floor of any CLI on this stack: a one-option typer app that imports urllib3 and exits."""

import typer
import urllib3  # noqa: F401 - the import is the cost being measured

app = typer.Typer(add_completion=False)


@app.command()
def main(endpoint: str = "http://127.0.0.1") -> None:
    """Do nothing, as fast as the stack allows."""


if __name__ == "__main__":
    app()
