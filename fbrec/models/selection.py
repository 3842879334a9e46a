"""Model selection on validation: a ModelCheckpoint that saves after every validation, whatever the optimizer.

Lightning's ModelCheckpoint skips a save when `global_step` has not moved since the last one. Models without an
optimizer (popularity counts, ExpoMF's closed-form EM) never move it, so after the first epoch they would never be
saved again; this callback keys the skip on (epoch, step) instead. Saving goes through the strategy, so with
TorchRecStrategy each rank writes its own shards and the directory appears atomically.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from fbrec.embeddings.meta import META_FILE, read_meta


class BestCheckpoint(ModelCheckpoint):
    """Keeps the best `save_top_k` checkpoints on `monitor` and (save_last) the latest state for resuming."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_saved_at: tuple[int, int] | None = None

    def _should_skip_saving_checkpoint(self, trainer) -> bool:
        return (bool(trainer.fast_dev_run) or trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking
                or self._last_saved_at == (trainer.current_epoch, trainer.global_step))

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self._last_saved_at = (trainer.current_epoch, trainer.global_step)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """With validation once per epoch (the default) Lightning saves here, after that epoch's validation."""
        if not self._should_skip_saving_checkpoint(trainer) and self._should_save_on_train_epoch_end(trainer):
            self._save_best_and_last(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        """Validation more or less often than once per epoch: Lightning saves here."""
        if not self._should_skip_saving_checkpoint(trainer) and not self._should_save_on_train_epoch_end(trainer):
            self._save_best_and_last(trainer)

    def _save_best_and_last(self, trainer) -> None:
        """The best checkpoints when the monitored metric improves, and `last.ckpt` EVERY time, so that --resume
        continues from the latest epoch (Lightning 2.6 rewrites last only when a top-k save happened in the same
        step, which left last.ckpt at the best epoch and made a resume train those epochs again)."""
        candidates = self._monitor_candidates(trainer)
        if self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0:
            self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)


def checkpoint_epoch(path: str | Path) -> int | None:
    """The (0-based) epoch a checkpoint directory was saved in, read from its JSON metadata."""
    meta = Path(path) / META_FILE
    return int(read_meta(meta)["epoch"]) if meta.is_file() else None
