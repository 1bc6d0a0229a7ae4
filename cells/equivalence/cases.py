"""The grid of comparisons `engine verify` runs: which cells, dtypes and loop features, and
the tolerance of each dtype (docs/verification.md has the full table)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Largest allowed `max |ours - keras| / max |keras|`, per dtype policy.
TOLERANCES = {
    "float64": 1e-12,
    "float32": 1e-5,
    "mixed_float16": 2e-2,
    "mixed_bfloat16": 2e-2,
}
CELLS = ("SimpleRNN", "LSTM", "GRU", "GRU(reset_after=False)")
MERGE_MODES = ("concat", "sum", "ave", "mul", "none")
MASKS = ("", "masking", "explicit")


@dataclass(frozen=True)
class Case:
    """One comparison. `bidirectional` is a merge mode ("none" for None) or "" for none;
    `mask` is "" (no mask), "masking" (a `keras.layers.Masking` layer in front, padding
    zeroed) or "explicit" (a `mask=` argument); `layers` stacks that many layers.

    `dropout` / `recurrent_dropout` are given to both layers; `training` calls them in
    training mode, where both sides then use the same fixed dropout masks (so they agree):
    with `training=False` the rates must change nothing."""

    cell: str
    dtype: str
    time: int = 8
    features: int = 4
    units: int = 6
    batch: int = 4
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    bidirectional: str = ""
    mask: str = ""
    initial_state: bool = False
    layers: int = 1
    unroll: bool = False
    graph: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    training: bool = False

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; one of {CELLS}")
        if self.dtype not in TOLERANCES:
            raise ValueError(f"unknown dtype {self.dtype!r}; one of {tuple(TOLERANCES)}")
        if self.bidirectional not in ("", *MERGE_MODES):
            raise ValueError(f"unknown merge mode {self.bidirectional!r}")
        if self.mask not in MASKS:
            raise ValueError(f"unknown mask {self.mask!r}")
        for name in ("dropout", "recurrent_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    @property
    def config(self) -> str:
        """A short, readable label of everything but the cell and dtype."""
        flags = [
            (self.return_state, "state"),
            (self.go_backwards, "backwards"),
            (self.bidirectional, f"bidi:{self.bidirectional}"),
            (self.mask, f"mask:{self.mask}"),
            (self.initial_state, "init"),
            (self.layers > 1, f"stack{self.layers}"),
            (self.dropout, f"dropout={self.dropout:g}"),
            (self.recurrent_dropout, f"recurrent_dropout={self.recurrent_dropout:g}"),
            (self.training, "training"),
        ]
        parts = [f"T={self.time} F={self.features} U={self.units}"]
        parts.append("seq" if self.return_sequences else "last")
        parts += [label for wanted, label in flags if wanted]
        parts.append("unrolled" if self.unroll else "loop")
        if self.graph:
            parts.append("tf.function")
        return " ".join(parts)

    @property
    def tolerance(self) -> float:
        return TOLERANCES[self.dtype]


def full_grid(dtypes: Iterable[str] = ("float64", "float32")) -> list[Case]:
    """The full grid: every cell, in each dtype, through every feature the issue names.

    Per cell: return_sequences on and off; go_backwards; a Masking layer and an explicit
    mask (rows padded at the start, the end, in the middle); initial_state; stacks of two;
    Bidirectional in every merge mode; time lengths 1 and 64, feature sizes 1 and 4. Each
    behaviour runs on both paths (unrolled and `tf.while_loop`).
    """
    shapes = [
        dict(time=1, features=1),
        dict(time=1, features=4, return_sequences=True, return_state=True, unroll=True),
        dict(time=64, features=1, return_sequences=True, go_backwards=True),
        dict(mask="masking", initial_state=True, go_backwards=True, return_state=True),
        dict(go_backwards=True, initial_state=True, return_sequences=True, unroll=True),
        dict(mask="masking", return_sequences=True, unroll=True),
        dict(mask="explicit", return_sequences=True, return_state=True),
        dict(layers=2, mask="masking", return_state=True),
        dict(layers=2, return_sequences=True, go_backwards=True, unroll=True),
        dict(bidirectional="concat", return_sequences=True, mask="explicit"),
        dict(bidirectional="sum", initial_state=True, unroll=True),
        dict(bidirectional="ave", return_sequences=True, mask="masking"),
        dict(bidirectional="mul", return_sequences=True, mask="explicit", unroll=True),
        dict(bidirectional="none", return_sequences=True, return_state=True, initial_state=True),
    ]
    cases = []
    for dtype_index, dtype in enumerate(dtypes):
        for cell in CELLS:
            for shape in shapes:
                if shape.get("time") == 64:
                    # The long sequence is the slow one: one path per dtype, alternating.
                    shape = dict(shape, unroll=dtype_index % 2 == 1)
                cases.append(Case(cell=cell, dtype=dtype, **shape))
    return cases


def graph_subset(dtypes: Iterable[str] = ("float64", "float32")) -> list[Case]:
    """The same comparisons inside one `tf.function` (graph mode, as training runs them):
    both paths in each dtype, with masks, initial states, Bidirectional and a stack."""
    loop = dict(time=64, return_sequences=True, mask="explicit", initial_state=True)
    unrolled = dict(bidirectional="concat", mask="masking", return_state=True, unroll=True)
    cells = iter(CELLS * len(tuple(dtypes)))
    return [
        Case(cell=next(cells), dtype=dtype, graph=True, **shape)
        for dtype in dtypes
        for shape in (loop, unrolled)
    ]


def mixed_subset(dtypes: Iterable[str] = ("mixed_float16", "mixed_bfloat16")) -> list[Case]:
    """A representative subset under the mixed policies: each cell on both paths, a long
    sequence, a mask, initial states, Bidirectional and a stack."""
    shapes = [
        dict(time=32, features=4, return_sequences=True, return_state=True, go_backwards=True),
        dict(bidirectional="concat", mask="masking", initial_state=True, unroll=True),
    ]
    return [
        # One long sequence per policy also runs inside a tf.function (graph mode).
        Case(
            cell=cell, dtype=dtype, graph=shape is shapes[0] and cell_index == dtype_index, **shape
        )
        for dtype_index, dtype in enumerate(dtypes)
        for cell_index, cell in enumerate(CELLS)
        for shape in shapes
    ]


def dropout_subset() -> list[Case]:
    """Dropout and recurrent dropout, a few cheap cases: per cell, inference with the rates
    set (they must change nothing), training with fixed masks on the `tf.while_loop` path
    with a mask, and inside Bidirectional on the unrolled path (inputs projected ahead);
    then training under each mixed policy, one in a `tf.function`."""
    rates = dict(dropout=0.25, recurrent_dropout=0.4, return_sequences=True)
    shapes = [
        dict(dtype="float32"),
        dict(dtype="float32", training=True, mask="explicit", return_state=True),
        dict(dtype="float64", training=True, bidirectional="concat", unroll=True),
    ]
    cases = [Case(cell=cell, **rates, **shape) for cell in CELLS for shape in shapes]
    return cases + [
        Case(cell="LSTM", dtype="mixed_float16", training=True, graph=True, **rates),
        Case(cell="GRU", dtype="mixed_bfloat16", training=True, unroll=True, **rates),
    ]


def default_cases() -> list[Case]:
    """What `engine verify` runs: the full grid in float64 and float32 (eager), the same
    comparisons on a subset in graph mode, a subset under the mixed policies, and the
    dropout cases."""
    return full_grid() + graph_subset() + mixed_subset() + dropout_subset()
