"""Optional modules that are not installed are recorded as absent, so importing them fails at once.

Gradio 6.31 runs `import matplotlib` twice for every handler call, and streamed updates are handler
calls, one per token (utils.MatplotlibBackendMananger, to switch the plotting backend). Nothing
here plots, so matplotlib is not installed, and a failed import is not cached: each one searches
every sys.path entry on the event loop. With 200 streams that was a quarter of the loop's time
(bench/web_load.py, profiled). A None entry in sys.modules is Python's documented way to make an
import raise ImportError without a search; an installed module is never touched.
"""

from __future__ import annotations

import importlib.util
import sys

GRADIO_PER_CALL_IMPORTS = ("matplotlib",)


def mark_absent(names: tuple[str, ...] = GRADIO_PER_CALL_IMPORTS) -> list[str]:
    """Record each of `names` that cannot be imported as absent; returns those recorded."""
    marked = []
    for name in names:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]
            marked.append(name)
    return marked
