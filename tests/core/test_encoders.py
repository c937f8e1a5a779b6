import gymnasium as gym
import numpy as np
import pytest
import torch

from thorndike.core.encoders import FlattenEncoder, ImageEncoder, OneHotEncoder, PackedEncoder, make_encoder
from thorndike.core.networks import NatureCNN
from thorndike.core.spaces import pack

Box, Discrete, MultiBinary = gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiBinary


def test_flat_box_is_flattened_and_float32_untouched():
    encoder = make_encoder(Box(-1.0, 1.0, (2, 3)))
    assert isinstance(encoder, FlattenEncoder) and encoder.out_features == 6
    obs = torch.arange(12.0).view(2, 2, 3)
    torch.testing.assert_close(encoder(obs), torch.arange(12.0).view(2, 6))
    flat = torch.randn(5, 4)
    assert make_encoder(Box(-1.0, 1.0, (4,)))(flat) is flat  # no copy on the hot path of classic control


def test_integer_box_and_multibinary_become_float():
    out = make_encoder(Box(0, 9, (3,), dtype=np.int64))(torch.tensor([[1, 2, 3]]))
    assert out.dtype == torch.float32 and out.tolist() == [[1.0, 2.0, 3.0]]
    encoder = make_encoder(MultiBinary((2, 2)))
    assert encoder.out_features == 4
    assert encoder(torch.tensor([[[1, 0], [0, 1]]], dtype=torch.int8)).tolist() == [[1.0, 0.0, 0.0, 1.0]]


def test_discrete_one_hot_respects_start():
    encoder = make_encoder(Discrete(3, start=2))  # values 2, 3, 4
    assert isinstance(encoder, OneHotEncoder) and encoder.out_features == 3
    out = encoder(torch.tensor([2, 4, 3]))
    assert out.dtype == torch.float32
    assert out.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert list(encoder.state_dict()) == []  # the codes are derived, not saved


def test_dict_of_box_and_discrete_encodes_to_five_features():
    space = gym.spaces.Dict({"position": Box(-1.0, 1.0, (2,)), "room": Discrete(3)})
    encoder = make_encoder(space)
    assert isinstance(encoder, PackedEncoder) and encoder.out_features == 2 + 3
    packed = pack(space, {"position": np.array([[0.5, -0.25], [1.0, 0.0]], dtype=np.float32), "room": np.array([2, 0])})
    assert packed.shape == (2, 3)
    out = encoder(packed)
    assert out.tolist() == [[0.5, -0.25, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0, 0.0]]


def test_tuple_with_discrete_between_boxes_and_start():
    space = gym.spaces.Tuple((Box(-1.0, 1.0, (1,)), Discrete(2, start=-1), Box(-1.0, 1.0, (1,)), Box(-1.0, 1.0, (2,))))
    encoder = make_encoder(space)
    assert encoder.out_features == 1 + 2 + 1 + 2
    assert len(encoder.segments) == 3  # the two adjacent Boxes are one slice
    packed = torch.tensor([[0.5, 0.0, 0.25, 0.75, -0.75]])  # Discrete value 0 is index 1 with start -1
    assert encoder(packed).tolist() == [[0.5, 0.0, 1.0, 0.25, 0.75, -0.75]]


@pytest.mark.parametrize("shape", [(4, 84, 84), (64, 64, 3), (84, 84)])
def test_image_encoder_shapes_float_output_and_uint8_scaling(shape):
    torch.manual_seed(0)
    encoder = make_encoder(Box(0, 255, shape, dtype=np.uint8))
    assert isinstance(encoder, ImageEncoder) and encoder.out_features == 512
    frames = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
    out = encoder(frames)
    assert out.shape == (2, 512) and out.dtype == torch.float32
    # Bytes are scaled to [0, 1] inside: the same as feeding the scaled floats.
    torch.testing.assert_close(out, encoder(frames.float() / 255.0))


def test_channel_last_frames_are_permuted_to_channel_first():
    torch.manual_seed(0)
    encoder = make_encoder(Box(0, 255, (64, 64, 3), dtype=np.uint8))
    cnn = encoder.cnn
    assert isinstance(cnn, NatureCNN) and cnn.net[0].in_channels == 3
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    torch.testing.assert_close(encoder(frames), cnn(frames.permute(0, 3, 1, 2).contiguous()))
    # 64 -> 15 -> 6 -> 4 spatially: 64 * 4 * 4 flattened features.
    assert cnn.net[7].in_features == 64 * 4 * 4


def test_unsupported_space_has_no_encoder():
    with pytest.raises(ValueError, match="no encoder for observation space Text"):
        make_encoder(gym.spaces.Text(4))
    with pytest.raises(ValueError, match="'pixels' is an image Box"):
        make_encoder(gym.spaces.Dict({"pixels": Box(0, 255, (84, 84), dtype=np.uint8)}))
