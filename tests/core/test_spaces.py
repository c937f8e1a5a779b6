import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector.utils import batch_space

from thorndike.core.spaces import is_image, pack, packed_layout, packed_size, storage_spec

Box, Discrete, MultiBinary = gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiBinary


def test_storage_spec_of_plain_spaces():
    assert storage_spec(Box(-1.0, 1.0, (4,), dtype=np.float64)) == ((4,), torch.float32)
    assert storage_spec(Box(0, 255, (4, 84, 84), dtype=np.uint8)) == ((4, 84, 84), torch.uint8)  # images stay bytes
    assert storage_spec(Box(0, 9, (3,), dtype=np.int32)) == ((3,), torch.int32)
    assert storage_spec(Discrete(5, start=2)) == ((), torch.int64)
    assert storage_spec(MultiBinary(3)) == ((3,), torch.int8)


def test_dict_packs_box_then_discrete_index_in_key_order():
    space = gym.spaces.Dict({"position": Box(-1.0, 1.0, (2,)), "room": Discrete(3)})
    assert storage_spec(space) == ((3,), torch.float32)
    layout = packed_layout(space)
    assert [(p.path, p.offset, p.size) for p in layout] == [("position", 0, 2), ("room", 2, 1)]
    assert layout[1].slice == slice(2, 3)
    obs = {"room": np.array([2, 0]), "position": np.array([[0.5, -0.25], [1.0, 0.0]], dtype=np.float32)}
    torch.testing.assert_close(pack(space, obs), torch.tensor([[0.5, -0.25, 2.0], [1.0, 0.0, 0.0]]))


def test_nested_tuple_paths_sizes_and_pack_of_a_sampled_batch():
    space = gym.spaces.Tuple((
        gym.spaces.Dict({"velocity": Box(-1.0, 1.0, (2, 3)), "flags": MultiBinary(2)}),
        Discrete(4, start=-1),
    ))
    # Dict keys are sorted by Gymnasium: flags before velocity.
    assert [(p.path, p.offset, p.size) for p in packed_layout(space)] == [
        ("0.flags", 0, 2), ("0.velocity", 2, 6), ("1", 8, 1)]
    assert packed_size(space) == 9
    batch = batch_space(space, 5).sample()
    packed = pack(space, batch)
    assert packed.shape == (5, 9) and packed.dtype == torch.float32
    torch.testing.assert_close(packed[:, 0:2], torch.from_numpy(batch[0]["flags"]).float())
    torch.testing.assert_close(packed[:, 2:8], torch.from_numpy(batch[0]["velocity"]).reshape(5, 6))
    torch.testing.assert_close(packed[:, 8], torch.from_numpy(batch[1]).float())  # raw value, start included


@pytest.mark.parametrize("sub, kind", [
    (gym.spaces.Text(5), "Text"),
    (gym.spaces.Sequence(Discrete(2)), "Sequence"),
    (Box(0, 255, (64, 64, 3), dtype=np.uint8), "image"),
])
def test_unsupported_sub_space_error_names_its_path_and_type(sub, kind):
    space = gym.spaces.Tuple((Discrete(2), gym.spaces.Dict({"inner": sub})))
    with pytest.raises(ValueError, match=rf"'1\.inner' is .*{kind}.*Box \(not an image\), Discrete, MultiBinary"):
        storage_spec(space)


def test_unsupported_top_level_space():
    with pytest.raises(ValueError, match="Text"):
        storage_spec(gym.spaces.Text(5))


def test_is_image():
    u8 = np.uint8
    assert is_image(Box(0, 255, (4, 84, 84), dtype=u8))
    assert is_image(Box(0, 255, (64, 64, 3), dtype=u8))
    assert is_image(Box(0, 255, (84, 84), dtype=u8))
    assert not is_image(Box(0, 255, (64, 64, 5), dtype=u8))  # 5 channels last and 64 first: not an image
    assert not is_image(Box(0.0, 1.0, (3, 64, 64)))  # float frames are not images here
    assert not is_image(Box(0, 255, (128,), dtype=u8))  # Atari RAM
