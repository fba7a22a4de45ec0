"""The seed's MNIST ``Net`` (two conv layers, two linear layers), as in the PyTorch slides."""
from __future__ import annotations

from .. import functional as F
from .. import modules as nn

__all__ = ["Net"]


class Net(nn.Module):
    """LeNet-style MNIST classifier: ``(N, 1, 28, 28)`` -> log-probabilities ``(N, 10)``.

    conv(1->10, k5) -> max_pool 2 -> relu -> conv(10->20, k5) -> Dropout2d -> max_pool 2 -> relu ->
    fc(320->50) -> relu -> dropout -> fc(50->10) -> log_softmax.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)
