"""The cells' proof of equivalence with `keras.layers.*`: outputs, states and gradients of
every cell, loop feature and dtype against the built-ins (docs/verification.md)."""

from cells.equivalence.cases import (
    CELLS,
    TOLERANCES,
    Case,
    default_cases,
    dropout_subset,
    full_grid,
    graph_subset,
    mixed_subset,
)
from cells.equivalence.compare import (
    Result,
    compare,
    disable_tf32,
    dtype_policy,
    mask_pattern,
    relative_difference,
)
from cells.equivalence.masks import fix_dropout_masks
from cells.equivalence.report import format_table, run_verify

__all__ = [
    "CELLS",
    "TOLERANCES",
    "Case",
    "Result",
    "compare",
    "default_cases",
    "disable_tf32",
    "dropout_subset",
    "fix_dropout_masks",
    "dtype_policy",
    "format_table",
    "full_grid",
    "graph_subset",
    "mask_pattern",
    "mixed_subset",
    "relative_difference",
    "run_verify",
]
