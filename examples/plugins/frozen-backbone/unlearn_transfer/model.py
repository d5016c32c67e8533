"""The module of the frozen-cnn plugin: a two-stage CNN feature extractor and a classification head."""

from torch import Tensor, nn

FEATURES = 128  # backbone output per image: 32 channels x 2 x 2


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),  # (N, 16, 8, 8)
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 16, 4, 4)
            nn.Conv2d(16, 32, 3, padding=1),  # (N, 32, 4, 4)
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 32, 2, 2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)  # (N, 128)


class FrozenBackboneClassifier(nn.Module):
    def __init__(self, num_classes: int, hidden: int = 0):
        super().__init__()
        self.backbone = Backbone()
        if hidden:
            self.head = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        else:
            self.head = nn.Linear(FEATURES, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))  # (N, 1, 8, 8) -> (N, K)
