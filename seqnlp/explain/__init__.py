"""Why a run labels a text as it does: token attributions, checked two ways, for terminals, JSON and HTML.

- ``seqnlp.explain.attribution``: Integrated Gradients on the embeddings and leave-one-token-out occlusion;
- ``seqnlp.explain.explanation``: ``explain(run, texts)`` -> ``Explanation`` per text;
- ``seqnlp.explain.render``: JSON lines, coloured terminal text, an HTML fragment or a standalone page.

>>> from seqnlp.explain import explain, render                       # doctest: +SKIP
>>> print(render.terminal(explain("runs/sst2", ["a dull , lifeless film"])[0]))  # doctest: +SKIP
"""

from seqnlp.explain.attribution import DEFAULT_STEPS
from seqnlp.explain.explanation import Explanation, explain

__all__ = ["DEFAULT_STEPS", "Explanation", "explain"]
