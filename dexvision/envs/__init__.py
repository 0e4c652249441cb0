"""The environments every learner trains in: the block reorientation task, its env and render workers,
the goal curriculum and whole-episode evaluation (docs/ARCHITECTURE.md)."""
