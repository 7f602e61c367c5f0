"""The figures an analysis draws, as matplotlib objects: matplotlib calls every function named in the
`figure.hooks` rcParam with each figure pyplot creates, so a test can read the axes, lines and texts that
went into a saved PNG/PDF (the code under test closes its figures, but they stay readable)."""

from contextlib import contextmanager

import matplotlib

CAPTURED: list = []


def remember(figure) -> None:
    CAPTURED.append(figure)


@contextmanager
def captured_figures():
    CAPTURED.clear()
    with matplotlib.rc_context({"figure.hooks": [f"{__name__}:remember"]}):
        yield CAPTURED
