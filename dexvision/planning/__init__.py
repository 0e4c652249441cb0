"""Sampling-based model-predictive control on the task's own MuJoCo model: a state teacher that needs no
training. Three parts kept apart (as Judo keeps them): the optimizer (`optimizer.py`: the cross-entropy
method, predictive sampling as its one-elite case, over `splines.py`'s knots), the costs (`costs.py`: named,
weighted terms of rolled-out states) and the rollout backend (`rollout.py`: `mujoco.rollout` on CPU threads).
`planner.py` binds them to an environment; `evaluate.py` plays it with the task's protocol."""
