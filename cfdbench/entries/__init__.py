"""What a scored run leaves behind, shared by evaluation (which scores), the leaderboard (which
verifies and renders) and the pipeline (which writes): the :class:`~cfdbench.entries.entry.Entry`
type with its JSON Schema, and the compact predictions file published beside an entry."""
