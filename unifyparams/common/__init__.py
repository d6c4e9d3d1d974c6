"""Logic the framework adapters share, written once (array-api-compat's ``common/``).

Each helper takes the framework's own pieces as arguments (a tensor type, a hook handle), so it
imports no framework. The adapters bind them to their framework:

- :mod:`.running`: the tensor a loss applies to, the one-element loss check, the dtype inputs take,
  and wrapping a framework method so a callback runs after it (``on_materialized`` hooks);
- :mod:`.blocks`: naming the block a forward pass failed in, and the one message for a failed
  ``materialize``;
- :mod:`.sharing`: the refusal to untie a block from itself;
- :mod:`.dtypes`: the one table of dtypes NumPy holds only through ``ml_dtypes``.

>>> from unifyparams.common import primary_output
>>> primary_output(([1.0, 2.0], "state"))
1.0
"""

from __future__ import annotations

from .blocks import BlockTracker, materialize_failure
from .dtypes import EXTENDED_FLOATS, extended_dtype, numpy_dtype
from .running import calling_after, check_loss, input_dtype, primary_output
from .sharing import refuse_untie_of_reused

__all__ = [
    "EXTENDED_FLOATS",
    "BlockTracker",
    "calling_after",
    "check_loss",
    "extended_dtype",
    "input_dtype",
    "materialize_failure",
    "numpy_dtype",
    "primary_output",
    "refuse_untie_of_reused",
]
