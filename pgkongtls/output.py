"""People's output on stderr, one way for every command: a terminal gets tables, a log gets lines.

On a terminal: rich tables at the terminal's width, with colour. Anywhere else (a pipe, a
log file, cron mail, CI): plain lines, one row per line, no box characters and nothing
wrapped, so grep and awk see whole names. Messages and hints (`next: ...` is a command to
paste) are never wrapped in either. rich is imported only for a terminal: its import is a
fifth of an ECDSA init's wall time (bench/init_vs_openssl.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from pgkongtls.errors import printable

if TYPE_CHECKING:
    from rich.console import Console

#: A cell with a rich style ("green", "bold red"); off a terminal only the text is printed.
Styled = tuple[str, str]
Cell = str | Styled

#: Long work stays silent for this long (seconds): a quick run prints no progress at all.
PROGRESS_AFTER = 1.0
#: In a log, at most one progress line per this many seconds.
PROGRESS_EVERY = 5.0
#: The clock progress reads (tests move it instead of waiting).
CLOCK: Callable[[], float] = time.monotonic


def on_terminal() -> bool:
    return sys.stderr.isatty()


def console() -> Console:
    """The terminal's console. No emoji codes: a fingerprint such as ...:CD:... must not turn into a picture."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, emoji=False)


def _text(cell: Cell) -> str:
    """The cell's text, any control character made visible; its own line breaks (SAN lists) kept."""
    return "\n".join(printable(part) for part in (cell if isinstance(cell, str) else cell[0]).split("\n"))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, right: Sequence[str] = (),
          no_wrap: Sequence[str] = (), lines: bool = False) -> None:
    """A table on a terminal; else (or when the terminal is too narrow for it) the title and one padded
    line per row, a cell's line breaks as '; '."""
    title = printable(title)
    if not on_terminal() or not _drawn(title, columns, rows, right=right, no_wrap=no_wrap, lines=lines):
        flat = [[_text(c).replace("\n", "; ") for c in row] for row in rows]
        width = [max((len(r[i]) for r in flat), default=0) for i in range(len(columns))]
        click.echo(title, err=True)
        for row in flat:
            padded = [c.rjust(w) if col in right else c.ljust(w)
                      for c, w, col in zip(row[:-1], width, columns, strict=False)] + row[-1:]
            click.echo(("  " + "  ".join(padded)).rstrip(), err=True)


def _narrowest(columns: Sequence[str], rows: Sequence[Sequence[Cell]], no_wrap: Sequence[str]) -> int:
    """The fewest columns the table fits in with no name cut: no_wrap cells whole, others' longest word;
    rich's own minimum lets it truncate no_wrap cells instead."""
    from rich.cells import cell_len

    def need(col: str, texts: list[str]) -> int:
        parts = texts if col in no_wrap else [w for t in texts for w in t.split()]
        return max((cell_len(p) for p in parts), default=0)

    texts = [[col, *(_text(r[i]) for r in rows)] for i, col in enumerate(columns)]
    lines = [[ln for t in col_texts for ln in t.split("\n")] for col_texts in texts]
    return sum(need(col, ls) for col, ls in zip(columns, lines, strict=True)) + 3 * len(columns) + 1


def _drawn(title: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, right: Sequence[str],
           no_wrap: Sequence[str], lines: bool) -> bool:
    """Draw the table on the terminal; False when even folded it would not fit (the caller prints lines)."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=escape(title), title_justify="left", show_lines=lines)
    for col in columns:
        t.add_column(escape(col), justify="right" if col in right else "left", no_wrap=col in no_wrap, overflow="fold")
    for cells in rows:
        t.add_row(*(escape(_text(c)) if isinstance(c, str) else f"[{c[1]}]{escape(_text(c))}[/]" for c in cells))
    out = console()
    if _narrowest(columns, rows, no_wrap) > out.width:
        return False
    out.print(t)
    return True


def line(text: str, *, label: Styled | None = None) -> None:
    """One message, never wrapped; `label` ("warning:", "yellow") is coloured on a terminal."""
    text = printable(text)
    if not on_terminal():
        click.echo(f"{label[0]} {text}" if label else text, err=True)
        return
    from rich.markup import escape

    shown = escape(text)
    console().print(f"[{label[1]}]{escape(label[0])}[/] {shown}" if label else shown, soft_wrap=True)


def hints(steps: Sequence[str]) -> None:
    """What to run next: commands, so never wrapped."""
    for step in steps:
        line(f"next: {step}")


class Progress:
    """The library's progress callback, `(done, total)`: a rich bar on a terminal, a line now and then in a log.

    Nothing shows for the first PROGRESS_AFTER seconds, so a quick run stays as quiet as before.
    """

    def __init__(self, label: str, *, clock: Callable[[], float] | None = None, terminal: bool | None = None,
                 to: Console | None = None) -> None:
        self.label, self.clock = label, clock or CLOCK
        self.terminal = on_terminal() if terminal is None else terminal
        self.to = to
        self.start = self.clock()
        self.last: float | None = None
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.start < PROGRESS_AFTER:
            return
        if not self.terminal:
            if self.last is None or now - self.last >= PROGRESS_EVERY:
                click.echo(f"{self.label}: {done}/{total} certificates", err=True)
                self.last = now
            return
        if self.bar is None:
            from rich.progress import Progress as Bar

            self.bar = Bar(console=self.to or console(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextmanager
def progress(label: str) -> Iterator[Progress]:
    """`with progress("issuing") as report: ops.issue(..., progress=report)`; the bar is gone afterwards."""
    p = Progress(label)
    try:
        yield p
    finally:
        p.close()
