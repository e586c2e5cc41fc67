"""The digit classifier whose features the metrics compare (lesson 10's Frechet distance).

| symbol | code                  | shape                                                    |
|--------|-----------------------|----------------------------------------------------------|
| x      | ``x``                 | (B, 1, 16, 16) digits in [-1, 1]                          |
| f(x)   | ``features(x)``       | (B, FEATURE_DIM), the feature layer before its ReLU       |
| logits | ``forward(x)``        | (B, 10)                                                   |

How it is trained (``train.fit`` with ``Classification``) and its features computed is
``ddpm_course.feature_net``'s; how it is loaded, ``ddpm_course.shipped``'s.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DigitClassifier"]


class DigitClassifier(nn.Module):
    """A small CNN for 16x16 digits: two conv/pool stages, a 32-d feature layer, 10 logits.

    x: (B, 1, 16, 16) in [-1, 1] -> logits (B, 10); ``features(x)`` -> (B, FEATURE_DIM), the
    pre-activation of the feature layer (closer to Gaussian than after the ReLU).
    """

    FEATURE_DIM = 32

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, self.FEATURE_DIM)
        self.head = nn.Linear(self.FEATURE_DIM, 10)

    def features(self, x: Tensor) -> Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 16, 8, 8)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 32, 4, 4)
        return self.fc(h.flatten(1))  # (B, FEATURE_DIM)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.features(x)))
