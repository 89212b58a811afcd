"""RGB frames stacked along channels: the middle frame (a multi-frame model's target and warm start), windows."""

import pytest
import torch

from facesr.io.frames import middle_channels, middle_frame, window_indices


def test_the_middle_frame_of_a_stack():
    frames = torch.rand(2, 9, 16, 16)
    assert torch.equal(middle_frame(frames), frames[:, 3:6]) and torch.equal(middle_frame(frames[:, :3]), frames[:, :3])
    assert middle_channels(1) == slice(0, 3) and middle_channels(3) == slice(3, 6) and middle_channels(5) == slice(6, 9)


@pytest.mark.parametrize("n, i, k, step, want", [(10, 0, 3, 1, [0, 0, 1]), (10, 5, 3, 2, [3, 5, 7]), (10, 9, 5, 1, [7, 8, 9, 9, 9]),
                                                  (1, 0, 3, 1, [0, 0, 0]), (10, 4, 1, 1, [4])])
def test_window_indices(n, i, k, step, want):
    assert window_indices(n, i, k, step) == want
