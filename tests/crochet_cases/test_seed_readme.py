"""
The seed's README (twisted_event_dispatcher), kept as a doctest.

``seed_readme.md`` is the seed's README with only its import line changed, to
``from twisted_hooks import EventDispatcher``; it drives the dispatcher with crochet.
"""

from __future__ import annotations

import doctest
from pathlib import Path

README = Path(__file__).resolve().parent / "seed_readme.md"


def test_seed_readme_doctest() -> None:
    """Every example of the seed's README passes against twisted_hooks."""
    result = doctest.testfile(
        str(README),
        module_relative=False,
        optionflags=doctest.ELLIPSIS,
        raise_on_error=False,
        verbose=False,
    )
    assert result.attempted > 20
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


def test_only_the_import_line_differs() -> None:
    """The kept README imports twisted_hooks and nothing from the seed's package."""
    text = README.read_text()
    assert ">>> from twisted_hooks import EventDispatcher\n" in text
    assert "oni.twisted_event_dispatcher import" not in text
