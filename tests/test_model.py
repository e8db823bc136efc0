"""The policy network: shapes, equivariance, padding invariance, temporal dropout."""

from __future__ import annotations

import math

import pytest
import torch

from imitate import actions
from imitate.model import (
    TEMPORAL_SCORINGS,
    Demo,
    OneShotPolicy,
    PolicyConfig,
    conditioning_indices,
    data_dependent_init,
    dot_attention_weights,
    temporal_dropout,
)

K = 10


def make_demo(num_blocks: int, frames: int, seed: int, batch: int = 1) -> Demo:
    g = torch.Generator().manual_seed(seed)
    blocks = torch.zeros(batch, frames, K, 3)
    blocks[:, :, :num_blocks] = torch.randn(batch, frames, num_blocks, 3, generator=g) * 0.2
    gripper = torch.zeros(batch, frames, 2)
    closed = torch.rand(batch, frames, generator=g) > 0.5
    gripper[..., 0], gripper[..., 1] = (~closed).float(), closed.float()
    block_mask = torch.zeros(batch, K, dtype=torch.bool)
    block_mask[:, :num_blocks] = True
    return Demo(blocks, gripper, block_mask, torch.ones(batch, frames, dtype=torch.bool))


def make_observation(num_blocks: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    blocks = torch.zeros(1, K, 3)
    blocks[:, :num_blocks] = torch.randn(1, num_blocks, 3, generator=g) * 0.2
    gripper = torch.tensor([[1.0, 0.0]])
    mask = torch.zeros(1, K, dtype=torch.bool)
    mask[:, :num_blocks] = True
    return blocks, gripper, mask


@pytest.fixture(scope="module", params=TEMPORAL_SCORINGS)
def policy(request) -> OneShotPolicy:
    torch.manual_seed(0)
    # Snapshot conditioning has no dropout: exact comparisons.
    model = OneShotPolicy(PolicyConfig(conditioning="snapshot", temporal_scoring=request.param))
    demo = make_demo(4, 12, seed=1, batch=3)
    obs = torch.randn(6, K, 3) * 0.2, torch.tensor([[1.0, 0.0]] * 6), demo.block_mask.repeat(2, 1)
    with data_dependent_init():
        model(demo, *obs, pairs_per_demo=2)
    return model.eval()


def test_output_shapes_and_loss(policy: OneShotPolicy) -> None:
    demo = make_demo(5, 9, seed=2, batch=2)
    blocks = torch.randn(6, K, 3)
    gripper = torch.tensor([[0.0, 1.0]] * 6)
    logits = policy(demo, blocks, gripper, demo.block_mask.repeat_interleave(3, 0), 3)
    assert logits.shape == (6, 3 * actions.NUM_BINS + actions.NUM_GRIPPER_CLASSES)
    labels = torch.zeros(6, 4, dtype=torch.long)
    assert policy.loss(logits, labels).item() > 0
    assert policy.config.context_size == 2 + 6 * policy.config.context_heads


def test_pairs_share_their_demo_exactly_as_repeated_demos_would(policy: OneShotPolicy) -> None:
    demo = make_demo(4, 9, seed=21, batch=2)
    g = torch.Generator().manual_seed(22)
    blocks, gripper = torch.randn(6, K, 3, generator=g) * 0.2, torch.tensor([[0.0, 1.0]] * 6)
    mask = demo.block_mask.repeat_interleave(3, 0)
    repeated = Demo(*(x.repeat_interleave(3, 0) for x in
                      (demo.blocks, demo.gripper, demo.block_mask, demo.frame_mask)))
    with torch.no_grad():
        shared = policy(demo, blocks, gripper, mask, pairs_per_demo=3)
        copied = policy(repeated, blocks, gripper, mask, pairs_per_demo=1)
    torch.testing.assert_close(shared, copied, rtol=1e-5, atol=1e-6)


def test_permuting_block_slots_leaves_the_action_unchanged(policy: OneShotPolicy) -> None:
    demo = make_demo(4, 10, seed=3)
    blocks, gripper, mask = make_observation(4, seed=4)
    order = torch.tensor([2, 0, 3, 1, 4, 5, 6, 7, 8, 9])
    permuted_demo = Demo(demo.blocks[:, :, order], demo.gripper, demo.block_mask[:, order],
                         demo.frame_mask)
    with torch.no_grad():
        reference = policy(demo, blocks, gripper, mask)
        permuted = policy(permuted_demo, blocks[:, order], gripper, mask[:, order])
    torch.testing.assert_close(permuted, reference, rtol=1e-4, atol=1e-5)


def test_padding_has_no_effect(policy: OneShotPolicy) -> None:
    """A 3-cube task alone vs batched with a 10-cube task whose demo is longer."""
    small, big = make_demo(3, 7, seed=5), make_demo(10, 11, seed=6)
    obs_small, obs_big = make_observation(3, seed=7), make_observation(10, seed=8)
    # Put garbage in the small task's padded slots: it must be ignored as well.
    small.blocks[:, :, 3:] = 5.0
    obs_small[0][:, 3:] = -3.0
    with torch.no_grad():
        alone = policy(small, *obs_small)
        padded_small = Demo(torch.cat([small.blocks, small.blocks[:, -1:].expand(1, 4, K, 3)], 1),
                            torch.cat([small.gripper, torch.full((1, 4, 2), 7.0)], 1),
                            small.block_mask,
                            torch.cat([small.frame_mask, torch.zeros(1, 4, dtype=torch.bool)], 1))
        batch = Demo(*(torch.cat([a, b]) for a, b in zip(
            (padded_small.blocks, padded_small.gripper, padded_small.block_mask,
             padded_small.frame_mask),
            (big.blocks, big.gripper, big.block_mask, big.frame_mask), strict=True)))
        together = policy(batch, *(torch.cat([a, b]) for a, b in zip(obs_small, obs_big,
                                                                    strict=True)))
    torch.testing.assert_close(together[:1], alone, rtol=1e-4, atol=1e-5)


def test_temporal_dropout_keeps_five_percent_in_order() -> None:
    lengths = torch.tensor([100, 39, 10, 1, 400])
    g = torch.Generator().manual_seed(0)
    indices, valid = temporal_dropout(lengths, 0.05, g)
    assert valid.sum(1).tolist() == [5, 1, 1, 1, 20]
    for row, mask, length in zip(indices, valid, lengths, strict=True):
        kept = row[mask]
        assert torch.all(kept[1:] > kept[:-1]) and kept.max() < length and kept.min() >= 0
    again, _ = temporal_dropout(lengths, 0.05, torch.Generator().manual_seed(0))
    assert torch.equal(again, indices)
    other, _ = temporal_dropout(lengths, 0.05, torch.Generator().manual_seed(1))
    assert not torch.equal(other, indices)


def test_ensemble_inference_is_deterministic_for_a_seed() -> None:
    torch.manual_seed(0)
    model = OneShotPolicy(PolicyConfig(conditioning="full")).eval()
    demo = make_demo(4, 200, seed=9)
    obs = make_observation(4, seed=10)
    results = []
    for _ in range(2):
        encoding = model.ensemble_encoding(demo, 10, torch.Generator().manual_seed(3))
        assert encoding.own.shape[:3] == (10, K, 10)  # (E, K, T~ = 5% of 200 frames)
        results.append(model.act_probabilities(encoding, *obs))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)
    axis, grip = results[0]
    assert axis.shape == (3, actions.NUM_BINS) and grip.shape == (actions.NUM_GRIPPER_CLASSES,)
    torch.testing.assert_close(axis.sum(-1), torch.ones(3))


def test_conditioning_indices() -> None:
    assert conditioning_indices(5, [1, 3], "full") == [0, 1, 2, 3, 4]
    assert conditioning_indices(5, [1, 3], "snapshot") == [1, 3, 4]
    assert conditioning_indices(5, [1, 4], "snapshot") == [1, 4]
    assert conditioning_indices(5, [1, 3], "final") == [4]
    with pytest.raises(ValueError, match="conditioning"):
        conditioning_indices(5, [], "middle")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="conditioning"):
        PolicyConfig(conditioning="half")
    with pytest.raises(ValueError, match="keep_fraction"):
        PolicyConfig(keep_fraction=0.0)
    with pytest.raises(ValueError, match="hidden"):
        PolicyConfig(hidden=0)
    with pytest.raises(ValueError, match="temporal_scoring"):
        PolicyConfig(temporal_scoring="cosine")


def test_dot_weights_match_a_direct_computation() -> None:
    g = torch.Generator().manual_seed(0)
    query, context = torch.randn(2, 3, 2, 8, generator=g), torch.randn(2, 5, 2, 8, generator=g)
    mask = torch.tensor([[True, True, False, True, True], [True, False, False, False, True]])
    bias = torch.zeros(2, 5).masked_fill(~mask, float("-inf"))
    weights = dot_attention_weights(query, context.permute(0, 2, 3, 1), bias)  # (2, 2, 3, 5)
    logits = torch.einsum("bqhd,bmhd->bhqm", query, context) / math.sqrt(8)
    expected = logits.masked_fill(~mask[:, None, None, :], float("-inf")).softmax(-1)
    torch.testing.assert_close(weights, expected)
    assert torch.all(weights[1, :, :, 1:4] == 0)


@pytest.mark.parametrize("version", ["0.2", "0.3"])
def test_checkpoints_of_older_versions_load_with_the_settings_they_were_trained_with(
        version: str, tmp_path) -> None:
    from imitate.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    scoring = "additive" if version == "0.2" else "dot"
    old = OneShotPolicy(PolicyConfig(conditioning="snapshot", temporal_scoring=scoring,
                                     position_scale=1.0))  # both fed positions in metres
    path = save_checkpoint(tmp_path / "old.pt", old, env={}, suite_version=1, training={},
                           step=0)
    payload = torch.load(path, weights_only=True)
    del payload["model_config"]["position_scale"]
    if version == "0.2":  # before the scoring option, with an unused layer per context step
        del payload["model_config"]["temporal_scoring"]
        for step in range(old.config.context_steps):
            for name in ("direction", "gain", "bias", "initialised"):
                payload["model_state"][f"context_net.steps.{step}.temporal_context.{name}"] = (
                    torch.zeros(1))
    torch.save(payload, path)
    loaded = load_checkpoint(path).policy
    assert loaded.config.temporal_scoring == scoring
    assert loaded.config.position_scale == 1.0
    demo, obs = make_demo(3, 5, seed=13), make_observation(3, seed=14)
    with torch.no_grad():
        torch.testing.assert_close(loaded(demo, *obs), old.eval()(demo, *obs))


def test_position_scale_is_validated_and_only_rescales_the_input() -> None:
    with pytest.raises(ValueError, match="position_scale"):
        PolicyConfig(position_scale=0.0)
    torch.manual_seed(0)
    metres = OneShotPolicy(PolicyConfig(conditioning="final", position_scale=1.0))
    decimetres = OneShotPolicy(PolicyConfig(conditioning="final", position_scale=10.0))
    decimetres.load_state_dict(metres.state_dict())
    demo, (blocks, gripper, mask) = make_demo(2, 4, seed=3), make_observation(2, seed=4)
    ten_times = Demo(demo.blocks * 10.0, demo.gripper, demo.block_mask, demo.frame_mask)
    with torch.no_grad():
        torch.testing.assert_close(decimetres.eval()(demo, blocks, gripper, mask),
                                   metres.eval()(ten_times, blocks * 10.0, gripper, mask))


def test_checkpoint_round_trip_gives_identical_outputs(policy: OneShotPolicy, tmp_path) -> None:
    from imitate.checkpoint import load_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path / "run" / "policy.pt", policy, env={"id": "BlockStack-v0"},
                           suite_version=1, training={"algo": "bc"}, step=7)
    loaded = load_checkpoint(path)
    assert loaded.step == 7 and loaded.training == {"algo": "bc"}
    assert loaded.policy.config == policy.config
    demo = make_demo(4, 6, seed=11)
    obs = make_observation(4, seed=12)
    with torch.no_grad():
        torch.testing.assert_close(loaded.policy(demo, *obs), policy(demo, *obs), rtol=0, atol=0)
    assert not list(tmp_path.joinpath("run").glob(".*.tmp*"))


def test_corrupt_foreign_or_missing_checkpoints_fail_clearly(policy: OneShotPolicy,
                                                             tmp_path) -> None:
    from imitate.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    good = save_checkpoint(tmp_path / "good.pt", policy, env={}, suite_version=1, training={},
                           step=0)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(truncated)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(text)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": policy.state_dict()}, foreign)
    with pytest.raises(CheckpointError, match="not an imitate policy checkpoint"):
        load_checkpoint(foreign)
    payload = torch.load(good, weights_only=True)
    payload["model_config"]["hidden"] = 32
    mismatched = tmp_path / "mismatched.pt"
    torch.save(payload, mismatched)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(mismatched)
    payload = torch.load(good, weights_only=True)
    payload["action_bins"]["axis"] = [0.0]
    other_bins = tmp_path / "bins.pt"
    torch.save(payload, other_bins)
    with pytest.raises(CheckpointError, match="action set"):
        load_checkpoint(other_bins)
