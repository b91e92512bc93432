"""Compare signed checkpoints with the database: every checkpointed head must still be there.

A checkpoint pins record `last_id` to `last_hash`. The database disagrees when that record has
another hash (rewritten, or rolled back to a copy where it differs), when it is missing beyond the
database's head (newest records deleted, or rolled back to an older copy), or when it is missing
inside the kept range. A record older than the oldest kept one is fine: the walk of the chain has
already checked that a retention checkpoint in the database vouches for everything purged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from store.audit_chain import VerifyResult
from store.audit_checkpoints import Checkpoint, CheckpointLine


@dataclass(frozen=True)
class CheckpointComparison:
    checked: int = 0
    agreeing: int = 0
    purged: int = 0  # checkpoints of records since purged under a retention checkpoint
    newest: Checkpoint | None = None
    problems: list[str] = field(default_factory=list)  # the first disagreement comes first
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.checked:
            return "checkpoints: none to compare yet"
        newest = self.newest
        line = f"checkpoints OK: {self.agreeing} agree with the database"
        if self.purged:
            line += f", {self.purged} cover records purged under a retention checkpoint"
        if newest is not None:
            line += f"; newest: record {newest.last_id} at {newest.ts}"
        return line


def valid_checkpoints(lines: Sequence[CheckpointLine]) -> list[tuple[str, Checkpoint]]:
    return [(line.where, line.checkpoint) for line in lines if line.checkpoint is not None]


def signed_from(checkpoints: Sequence[tuple[str, Checkpoint]]) -> int | None:
    """The earliest point any writer says signing began; None without checkpoints."""
    return min((cp.signed_from for _, cp in checkpoints), default=None)


def compare(
    lines: Sequence[CheckpointLine],
    chain: VerifyResult,
    head_id: int,
    hashes: Mapping[int, str],
) -> CheckpointComparison:
    """Judge every checkpoint line against the database; `hashes` maps each checkpointed id that
    still exists to its stored hash."""
    problems = [f"{line.where}: {line.problem}" for line in lines if line.problem is not None]
    checkpoints = sorted(valid_checkpoints(lines), key=lambda item: (item[1].last_id, item[1].ts))
    agreeing = purged = 0
    last_agreeing: int | None = None
    disagreements: list[str] = []
    for where, cp in checkpoints:
        stored = hashes.get(cp.last_id)
        said = f"the checkpoint of {cp.ts} ({where}) vouches for record {cp.last_id}"
        if stored is not None:
            if stored == cp.last_hash:
                agreeing += 1
                last_agreeing = cp.last_id
                continue
            span = f"{(last_agreeing or 0) + 1}..{cp.last_id}"
            disagreements.append(
                f"{said}, but the database holds a different record {cp.last_id}: something in "
                f"records {span} was rewritten, or the database was rolled back"
            )
        elif cp.last_id > head_id:
            disagreements.append(
                f"{said}, but the database ends at record {head_id}: the newest records were "
                "deleted or the database was rolled back to an older copy"
            )
        elif chain.first_id is not None and cp.last_id < chain.first_id:
            anchor = chain.anchors.get(cp.last_id)
            if anchor is not None and anchor != cp.last_hash:
                disagreements.append(
                    f"{said}, but the retention checkpoint that purged it names another hash"
                )
            else:
                purged += 1
        else:
            disagreements.append(f"{said}, but that record is missing from the database")
    if len(disagreements) > 1:
        disagreements[1:] = [f"... and {len(disagreements) - 1} later checkpoints disagree too"]
    known = {cp.hash for _, cp in checkpoints}
    orphans = sum(1 for _, cp in checkpoints if cp.prev is not None and cp.prev not in known)
    notes = []
    if orphans:
        notes.append(
            f"note: {orphans} checkpoints follow one that is not in the given files "
            "(archived lines, or a writer's other file)"
        )
    return CheckpointComparison(
        checked=len(checkpoints),
        agreeing=agreeing,
        purged=purged,
        newest=checkpoints[-1][1] if checkpoints else None,
        problems=problems + disagreements,
        notes=notes,
    )
