"""The ``alchemy-help`` directive: the ``--help`` text of an ``alchemy`` command, rendered at build
time from the installed CLI so that the user guide never drifts from the real options.

Usage (MyST)::

    ```{alchemy-help} prior show
    ```

An unknown command is a build warning (an error under ``-W``).
"""

from __future__ import annotations

import click
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

WIDTH = 80


def help_text(words: list[str]) -> str:
    """``alchemy WORDS... --help`` as the terminal shows it, ``WIDTH`` columns wide."""
    from neuralalchemy.cli import cli

    command: click.Command = cli
    ctx = click.Context(cli, info_name="alchemy", terminal_width=WIDTH, max_content_width=WIDTH,
                        **cli.context_settings)
    for word in words:
        if not isinstance(command, click.Group):
            raise LookupError(f"'{ctx.command_path}' has no sub-command '{word}'")
        sub = command.get_command(ctx, word)
        if sub is None:
            raise LookupError(f"'{ctx.command_path}' has no sub-command '{word}'")
        ctx = click.Context(sub, info_name=word, parent=ctx, terminal_width=WIDTH,
                            max_content_width=WIDTH)
        command = sub
    return command.get_help(ctx)


class AlchemyHelp(SphinxDirective):
    """Literal block with the help of the command named by the argument (words separated by
    spaces, without the leading ``alchemy``)."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = False

    def run(self) -> list[nodes.Node]:
        words = self.arguments[0].split()
        try:
            text = help_text(words)
        except LookupError as exc:
            return [self.state.document.reporter.warning(
                f"alchemy-help: {exc}", line=self.lineno)]
        block = nodes.literal_block(text, text, language="text")
        self.set_source_info(block)
        return [block]


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("alchemy-help", AlchemyHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
