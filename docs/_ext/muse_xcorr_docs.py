"""Sphinx helpers of the muse_xcorr documentation.

``.. muse-xcorr-flag-table::``
    The table of the per-spaxel bit flags, built at build time from
    :data:`muse_xcorr.flags.MEANING`, so that it cannot drift from the code.

``.. muse-xcorr-help::``
    The ``muse-xcorr --help`` text, from the command's own parser.

``.. toctree-if-present::``
    A ``toctree`` whose entries are dropped when their document does not exist
    (chapters that arrive from other branches), so that the build passes with
    or without them. Same options as ``toctree``; one document name per line.
"""
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.directives.other import TocTree
from sphinx.util.docutils import SphinxDirective


def _literal_text(text):
    """Escape the reStructuredText markup characters of plain text."""
    for char in "\\|*`_[]":
        text = text.replace(char, "\\" + char)
    return text


class FlagTable(SphinxDirective):
    """A list-table of muse_xcorr.flags.Flag: bit, name, meaning."""

    has_content = False

    def run(self):
        from muse_xcorr.flags import MEANING, Flag

        lines = [".. list-table:: Bit flags of a :class:`~muse_xcorr.Redshift`",
                 "   :header-rows: 1", "   :widths: 8 22 70", "",
                 "   * - Bit", "     - Flag", "     - Meaning"]
        for flag in Flag:
            lines += [f"   * - {int(flag)}",
                      f"     - :attr:`Flag.{flag.name} <muse_xcorr.flags.Flag.{flag.name}>`",
                      f"     - {_literal_text(MEANING[flag])}"]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="muse_xcorr.flags.MEANING"),
                                self.content_offset, container)
        return container.children


class CommandHelp(SphinxDirective):
    """The help text of the muse-xcorr command as a literal block."""

    has_content = False

    def run(self):
        import os

        from muse_xcorr.cli import _parser

        columns = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal width
        try:
            text = _parser().format_help()
        finally:
            if columns is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = columns
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


class TocTreeIfPresent(TocTree):
    """A toctree that leaves out entries whose document is absent."""

    def run(self):
        found = self.env.found_docs
        kept = [line for line in self.content if not line.strip() or line.strip() in found]
        self.content = StringList(kept, items=[(self.env.docname, i) for i in range(len(kept))])
        return super().run()


def setup(app):
    app.add_directive("muse-xcorr-flag-table", FlagTable)
    app.add_directive("muse-xcorr-help", CommandHelp)
    app.add_directive("toctree-if-present", TocTreeIfPresent)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
