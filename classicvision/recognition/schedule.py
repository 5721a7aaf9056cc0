"""Learning-rate schedules and the time budget of CNN training (pure Python, no torch).

* :func:`learning_rate`: linear warm-up from ``peak / warmup_steps`` to ``peak`` over the first
  ``warmup_steps`` steps (Goyal et al. 2017, §2.2), then half a cosine from ``peak`` down to 0 at
  ``total_steps`` (Loshchilov & Hutter 2017's SGDR without restarts); or a constant ``peak``.
  The warm-up does not depend on ``total_steps``: this is what lets a time-budgeted run choose
  its length after its first epoch without changing what that epoch did.
* :func:`plan_epochs`: how many epochs fit in a time budget, from the measured time of one.
"""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "learning_rate", "plan_epochs"]

#: The schedules :func:`learning_rate` knows.
SCHEDULES = ("cosine", "constant")


def learning_rate(step: int, total_steps: int, *, peak: float, warmup_steps: int = 0,
                  schedule: str = "cosine") -> float:
    """Learning rate of optimizer step ``step`` (0-based) out of ``total_steps``.

    Parameters
    ----------
    step : int
        The step about to be taken, ``0 <= step < total_steps``.
    total_steps : int
        Steps of the whole run (only the cosine part depends on it).
    peak : float
        The largest learning rate.
    warmup_steps : int
        Steps of linear warm-up: step ``s < warmup_steps`` gets ``peak * (s + 1) / warmup_steps``.
    schedule : {'cosine', 'constant'}
        After the warm-up: ``peak * (1 + cos(pi * t)) / 2`` with ``t = (step - warmup_steps) /
        (total_steps - warmup_steps)`` going from 0 to just under 1, or ``peak`` throughout
        (``'constant'`` ignores ``warmup_steps``, as a plain constant rate).

    Returns
    -------
    float

    References
    ----------
    Goyal et al., "Accurate, large minibatch SGD: training ImageNet in 1 hour", 2017, §2.2.
    Loshchilov & Hutter, "SGDR: stochastic gradient descent with warm restarts", ICLR 2017, eq. 5.

    Examples
    --------
    >>> [round(learning_rate(s, 6, peak=1.0, warmup_steps=2), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    >>> learning_rate(3, 6, peak=0.1, schedule="constant")
    0.1
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {schedule!r}")
    if schedule == "constant":
        return float(peak)
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return peak * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def plan_epochs(max_seconds: float, elapsed: float, epoch_seconds: float, max_epochs: int, *,
                epochs_done: int = 1) -> int:
    """Epochs of a run that must end within ``max_seconds``, decided after its first ``epochs_done``.

    Parameters
    ----------
    max_seconds : float
        The budget, counted from the start of ``fit``.
    elapsed : float
        Seconds since the start of ``fit`` at the end of epoch ``epochs_done`` (pre-processing included).
    epoch_seconds : float
        Duration of the last epoch done (its held-out evaluation included), taken as the cost of
        every later one.
    max_epochs : int
        Upper bound (the ``epochs`` parameter).
    epochs_done : int
        Epochs already run.

    Returns
    -------
    int
        ``min(max_epochs, epochs_done + floor((max_seconds - elapsed) / epoch_seconds))``, at least
        ``epochs_done``.

    Examples
    --------
    >>> plan_epochs(100.0, elapsed=12.0, epoch_seconds=4.0, max_epochs=50)
    23
    >>> plan_epochs(100.0, elapsed=12.0, epoch_seconds=4.0, max_epochs=50, epochs_done=2)
    24
    >>> plan_epochs(100.0, elapsed=12.0, epoch_seconds=4.0, max_epochs=10)
    10
    """
    if epoch_seconds <= 0:
        return int(max(max_epochs, epochs_done))
    more = math.floor(max(max_seconds - elapsed, 0.0) / epoch_seconds)
    return int(max(epochs_done, min(max_epochs, epochs_done + more)))
