"""What a run's curves say, with the numbers behind each verdict (plain functions).

Curves are smoothed with an exponential moving average (``SMOOTHING`` of the new point each
step) before judging, so that one noisy batch decides nothing; the raw points stay in the
document. Steps become epochs by the file's own ``epoch`` values, else by the data's
``stats.json`` (the run is taken to have covered its ``estimate.n_epochs``).

* **overfitting**: the smoothed validation loss ends more than ``RISE`` above its minimum, the
  rise lasting at least ``SUSTAINED`` of the steps after it, while the training loss fell over
  the same stretch;
* **underfitting**: the smoothed training loss still fell by more than ``STILL_FALLING`` over
  the last quarter of the steps (and validation, where there is any, did not rise);
* **noisy validation**: fewer than ``FEW_VALIDATION`` validation examples (from stats.json), or
  the raw validation loss jumping around its smoothed curve by more than ``NOISE`` of its level;
* **suggested epochs**: the epoch of the validation minimum, rounded up, but one fewer than the
  run had when it overfit and the minimum fell in its last epoch; when underfitting and there is
  no minimum before the end, one more epoch than the run had.
"""

from __future__ import annotations

import math
from typing import Any

from beam_pipeline.metrics.reading import Run

SMOOTHING = 0.2
RISE = 0.05
SUSTAINED = 0.2
STILL_FALLING = 0.05
FEW_VALIDATION = 100
NOISE = 0.15


def smooth(points: list[tuple[int, float]], alpha: float = SMOOTHING) -> list[tuple[int, float]]:
    out, level = [], None
    for step, value in points:
        level = value if level is None else alpha * value + (1 - alpha) * level
        out.append((step, level))
    return out


def epoch_of(run: Run, steps_per_epoch: float | None):
    """step -> epoch: the file's own epochs (interpolated), else steps / steps_per_epoch."""
    known = sorted(run.epochs.items())

    def lookup(step: int) -> float | None:
        if known:
            before = [(s, e) for s, e in known if s <= step]
            after = [(s, e) for s, e in known if s >= step]
            if before and after:
                (s0, e0), (s1, e1) = before[-1], after[0]
                return e0 if s1 == s0 else e0 + (e1 - e0) * (step - s0) / (s1 - s0)
            if before and before[-1][0]:
                return before[-1][1] * step / before[-1][0]
        return step / steps_per_epoch if steps_per_epoch else None

    return lookup


def _round(value: float | None, digits: int = 4):
    return None if value is None else round(value, digits)


def judge(run: Run, stats: dict | None = None) -> dict[str, Any]:
    """The metrics document's ``verdicts`` and ``suggested_epochs`` for ``run``."""
    train = sorted(run.series["train_loss"].items())
    valid = sorted(run.series["valid_loss"].items())
    last_step = max((s for series in run.series.values() for s in series), default=0)
    run_epochs = (stats or {}).get("estimate", {}).get("n_epochs")
    steps_per_epoch = last_step / run_epochs if run_epochs and last_step else None
    epoch = epoch_of(run, steps_per_epoch)
    if run_epochs is None and run.epochs:
        run_epochs = math.ceil(max(run.epochs.values()) - 1e-9)
    strain, svalid = smooth(train), smooth(valid)
    verdicts: dict[str, Any] = {}

    minimum = min(svalid, key=lambda p: p[1]) if svalid else None
    if minimum:
        min_step, min_loss = minimum
        after = [p for p in svalid if p[0] > min_step]
        final_valid = svalid[-1][1]
        train_at_min = next((v for s, v in reversed(strain) if s <= min_step), strain[0][1] if strain else None)
        train_final = strain[-1][1] if strain else None
        rising_share = len(after) / max(len(svalid), 1)
        overfit = (final_valid > min_loss * (1 + RISE) and rising_share >= SUSTAINED
                   and train_final is not None and train_at_min is not None and train_final < train_at_min)
        verdicts["overfitting"] = {
            "verdict": overfit, "valid_loss_min": _round(min_loss), "min_step": min_step,
            "min_epoch": _round(epoch(min_step), 2), "valid_loss_final": _round(final_valid),
            "rise": _round(final_valid / min_loss - 1 if min_loss else None), "share_of_steps_after_min": _round(rising_share),
            "train_loss_at_min": _round(train_at_min), "train_loss_final": _round(train_final),
            "gap_final": _round(final_valid - train_final if train_final is not None else None),
        }
    if strain:
        quarter = [p for p in strain if p[0] >= last_step * 0.75] or strain[-1:]
        start, end = quarter[0][1], strain[-1][1]
        drop = (start - end) / start if start else 0.0
        valid_rising = bool(verdicts.get("overfitting", {}).get("verdict"))
        verdicts["underfitting"] = {"verdict": drop > STILL_FALLING and not valid_rising,
                                    "train_loss_drop_last_quarter": _round(drop), "train_loss_final": _round(end)}
    if valid:
        n_validation = (stats or {}).get("records", {}).get("validation")
        residuals = [abs(raw - smoothed) for (_, raw), (_, smoothed) in zip(valid, svalid)][len(valid) // 4:]
        level = sum(v for _, v in svalid) / len(svalid)
        noise = (sum(residuals) / len(residuals) / level) if residuals and level else 0.0
        verdicts["noisy_validation"] = {
            "verdict": (n_validation is not None and n_validation < FEW_VALIDATION) or noise > NOISE,
            "validation_examples": n_validation, "relative_noise": _round(noise)}

    suggested = None
    if minimum and epoch(minimum[0]) is not None:
        suggested = max(1, math.ceil(epoch(minimum[0]) - 1e-9))
    if suggested is not None and run_epochs and suggested >= run_epochs and verdicts.get("overfitting", {}).get("verdict"):
        suggested = max(1, run_epochs - 1)  # the run itself shows its full length is too long
    if verdicts.get("underfitting", {}).get("verdict") and run_epochs and (suggested is None or suggested >= run_epochs):
        suggested = run_epochs + 1
    return {"verdicts": verdicts, "suggested_epochs": suggested, "run_epochs": run_epochs,
            "steps": last_step, "steps_per_epoch": _round(steps_per_epoch, 3)}
