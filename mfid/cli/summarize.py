"""``mfid summarize [DIR]``: the settings table (setting x method, converged revenue, share of
the bound or gain over first price, exploitability) of every revenue report ``DIR/A*/report.json``
written into ``DIR/README.md`` between its table markers (``mfid.report.summary``).

Example::

    mfid summarize results
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "summarize",
        help="write the settings table of every revenue report into DIR/README.md",
        description="Collect DIR/A*/report.json (written by mfid design auction) and write one "
        "table (setting x method: converged revenue, share of the bound or gain over first "
        "price, exploitability) into DIR/README.md between its table markers.",
    )
    p.add_argument("dir", type=Path, nargs="?", default=Path("results"),
                   help="directory holding A*/report.json")  # fmt: skip
    p.set_defaults(func=run_summarize)


def run_summarize(args) -> int:
    from mfid.report.summary import write_summary

    if not args.dir.is_dir():
        raise ValueError(f"dir {args.dir} is not a directory")
    path = write_summary(args.dir)
    print(f"wrote {path}")
    return 0
