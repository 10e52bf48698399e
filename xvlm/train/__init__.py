"""Pre-training: typed config, AdamW groups + schedule, resumable checkpoints, the loop, torchrun set-up.

Entry points: ``train(PretrainConfig, callbacks) -> TrainResult`` and ``python -m xvlm.train --config``
(for ``torchrun``). See docs/training.md.
"""

from xvlm.train.config import OptimConfig, PretrainConfig
from xvlm.train.loop import RunInfo, TrainCallback, TrainResult, train

__all__ = ["OptimConfig", "PretrainConfig", "RunInfo", "TrainCallback", "TrainResult", "train"]
