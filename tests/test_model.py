"""The policy network: shapes, equivariance, padding invariance, temporal dropout."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from imitate import actions
from imitate.model import (
    CONTEXT_FORMS,
    TEMPORAL_SCORINGS,
    DemoBatch,
    OneShotPolicy,
    PolicyConfig,
    data_dependent_init,
    dot_attention_weights,
    kept_frame_counts,
    record_attention,
    temporal_dropout,
)

K = 10


def make_demo(num_blocks: int, frames: int, seed: int, batch: int = 1) -> DemoBatch:
    g = torch.Generator().manual_seed(seed)
    blocks = torch.zeros(batch, frames, K, 3)
    blocks[:, :, :num_blocks] = torch.randn(batch, frames, num_blocks, 3, generator=g) * 0.2
    gripper = torch.zeros(batch, frames, 2)
    closed = torch.rand(batch, frames, generator=g) > 0.5
    gripper[..., 0], gripper[..., 1] = (~closed).float(), closed.float()
    block_mask = torch.zeros(batch, K, dtype=torch.bool)
    block_mask[:, :num_blocks] = True
    return DemoBatch(blocks, gripper, block_mask, torch.ones(batch, frames, dtype=torch.bool))


def make_observation(num_blocks: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    blocks = torch.zeros(1, K, 3)
    blocks[:, :num_blocks] = torch.randn(1, num_blocks, 3, generator=g) * 0.2
    gripper = torch.tensor([[1.0, 0.0]])
    mask = torch.zeros(1, K, dtype=torch.bool)
    mask[:, :num_blocks] = True
    return blocks, gripper, mask


@pytest.fixture(scope="module", params=list(itertools.product(CONTEXT_FORMS, TEMPORAL_SCORINGS)),
                ids="-".join)
def policy(request) -> OneShotPolicy:
    torch.manual_seed(0)
    form, scoring = request.param
    # Snapshot conditioning has no dropout: exact comparisons.
    model = OneShotPolicy(PolicyConfig(conditioning="snapshot", temporal_scoring=scoring,
                                       context_form=form))
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
    repeated = DemoBatch(*(x.repeat_interleave(3, 0) for x in
                      (demo.blocks, demo.gripper, demo.block_mask, demo.frame_mask)))
    with torch.no_grad():
        shared = policy(demo, blocks, gripper, mask, pairs_per_demo=3)
        copied = policy(repeated, blocks, gripper, mask, pairs_per_demo=1)
    # Logits reach about 20 after the data-dependent init; float32 sums in another order differ
    # by a few 1e-5 (float64: 1e-13). A wiring error differs by order 1.
    torch.testing.assert_close(shared, copied, rtol=1e-5, atol=2e-4)


def test_permuting_block_slots_leaves_the_action_unchanged(policy: OneShotPolicy) -> None:
    demo = make_demo(4, 10, seed=3)
    blocks, gripper, mask = make_observation(4, seed=4)
    order = torch.tensor([2, 0, 3, 1, 4, 5, 6, 7, 8, 9])
    permuted_demo = DemoBatch(demo.blocks[:, :, order], demo.gripper, demo.block_mask[:, order],
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
        padded_small = DemoBatch(
            torch.cat([small.blocks, small.blocks[:, -1:].expand(1, 4, K, 3)], 1),
            torch.cat([small.gripper, torch.full((1, 4, 2), 7.0)], 1),
            small.block_mask,
            torch.cat([small.frame_mask, torch.zeros(1, 4, dtype=torch.bool)], 1))
        batch = DemoBatch(*(torch.cat([a, b]) for a, b in zip(
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


def test_temporal_dropout_keeps_a_minimum_of_frames() -> None:
    lengths = torch.tensor([100, 39, 10, 400])
    assert kept_frame_counts(lengths, 0.05, 8).tolist() == [8, 8, 8, 20]
    assert kept_frame_counts(lengths, 0.25, 1).tolist() == [25, 9, 2, 100]
    indices, valid = temporal_dropout(lengths, 0.05, torch.Generator().manual_seed(0), 12)
    assert valid.sum(1).tolist() == [12, 12, 10, 20]  # the 10-frame demo keeps all its frames
    assert indices[2, :10].tolist() == list(range(10))
    policy = OneShotPolicy(PolicyConfig(keep_fraction=0.1, min_kept_frames=6))
    kept = policy.subsample(make_demo(3, 40, seed=0), torch.Generator().manual_seed(1))
    assert kept.blocks.shape[1] == 6 and kept.frames is not None
    assert kept.frames[0].tolist() == sorted(set(kept.frames[0].tolist()))


def _naive_module2_read(step, x, block_mask, own, keys, frame_mask):
    """Module 2's temporal attention written as loops: for each observation and head, the score
    of frame t is the sum over real blocks j of score(q_j, key_tj); one softmax over frames;
    block i reads its own embedding. own (K, T, D), keys (T, K, H, D)."""
    heads, d = step.heads, step.hidden
    q = step.temporal_query(x).unflatten(-1, (heads, d))  # (K, H, D)
    out = torch.zeros(x.shape[0], heads, d)
    for h in range(heads):
        scores = torch.zeros(own.shape[1])
        for t in range(own.shape[1]):
            for j in range(x.shape[0]):
                if not block_mask[j]:
                    continue
                if step.temporal is None:
                    scores[t] += q[j, h] @ keys[t, j, h] / math.sqrt(d)
                else:
                    scores[t] += step.temporal.v[h] @ torch.tanh(q[j, h] + keys[t, j, h])
        w = scores.masked_fill(~frame_mask, float("-inf")).softmax(0)  # (T,)
        out[:, h] = torch.einsum("t,ktd->kd", w, own)
    return out.reshape(x.shape[0], heads * d), w


@pytest.mark.parametrize("scoring", TEMPORAL_SCORINGS)
def test_module2_temporal_attention_sums_block_scores_into_one_weight_per_frame(
        scoring: str) -> None:
    torch.manual_seed(0)
    policy = OneShotPolicy(PolicyConfig(conditioning="snapshot", temporal_scoring=scoring))
    demo = make_demo(3, 6, seed=30)
    demo.frame_mask[:, 4:] = False  # two padded frames
    mask = make_observation(3, seed=31)[2]
    with torch.no_grad():
        encoding = policy.encode(demo)
        step, keys = policy.context_net.steps[1], encoding.keys[1]
        x = torch.randn(1, K, policy.config.hidden)
        with record_attention() as maps:
            fast = step.read_demo(x, mask, encoding, keys)  # (1, K, H*D)
        layout = policy.context_net.demo_keys[1](
            encoding.own.transpose(1, 2)).unflatten(-1, (step.heads, step.hidden))[0]
        slow, weights = _naive_module2_read(step, x[0], mask[0], encoding.own[0], layout,
                                            demo.frame_mask[0])
    torch.testing.assert_close(fast[0, :3], slow[:3], rtol=1e-4, atol=1e-5)
    assert maps.temporal[0].shape == (1, step.heads, 6)  # (N, H, T): one map for all blocks
    torch.testing.assert_close(maps.temporal[0][0, -1], weights)
    assert torch.all(maps.temporal[0][..., 4:] == 0)


def test_module2_spatial_attention_reads_the_demo_at_the_first_step() -> None:
    """ctx, q = Dense([x, temp]) and memory [xyz, temp]: a change in one block's demo embedding
    reaches the other blocks' spatial reads already at the first LSTM step (not in 0.5)."""
    outcomes = {}
    for form in ("module2", "0.5"):
        torch.manual_seed(0)
        policy = OneShotPolicy(PolicyConfig(conditioning="snapshot", context_form=form))
        demo = make_demo(3, 5, seed=40)
        blocks, gripper, mask = make_observation(3, seed=41)
        net = policy.context_net
        robot = gripper.unsqueeze(1).expand(-1, K, -1)
        state = net.embed(torch.cat([blocks, robot], -1))
        reads = []
        with torch.no_grad():
            for shift in (0.0, 1.0):
                encoding = policy.encode(demo)
                encoding.own[:, 2] += shift  # block c's demo embedding only, both layouts
                encoding.by_frame[:, :, 2] += shift
                with record_attention() as maps:
                    net.steps[0](state, torch.zeros_like(state), blocks, robot, mask, encoding,
                                 encoding.keys[0])
                reads.append(maps.spatial[0][0, 0])  # block a's weights over the blocks
        outcomes[form] = not torch.allclose(reads[0], reads[1])
    assert outcomes == {"module2": True, "0.5": False}


@pytest.mark.parametrize("form", CONTEXT_FORMS)
def test_attention_maps_on_request_only_and_without_changing_the_output(form: str) -> None:
    torch.manual_seed(0)
    config = PolicyConfig(conditioning="full", context_form=form, min_kept_frames=4)
    policy = OneShotPolicy(config).eval()
    demo = make_demo(3, 30, seed=50)
    blocks, gripper, mask = make_observation(3, seed=51)
    kept = policy.subsample(demo, torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = policy(kept, blocks, gripper, mask)
        with record_attention() as maps:
            recorded = policy(kept, blocks, gripper, mask)
        after = policy(kept, blocks, gripper, mask)
    torch.testing.assert_close(recorded, plain, rtol=0, atol=0)
    assert len(maps.temporal) == len(maps.spatial) == config.context_steps
    t, heads = kept.blocks.shape[1], config.context_heads
    assert [m.shape for m in maps.neighborhood] == [(1, t, K, 2, K)] * len(config.dilations)
    assert maps.temporal[0].shape == (1, heads, t)
    assert maps.spatial[0].shape == (1, K, heads, K) and maps.fixed[0].shape == (1, 2, heads, K)
    for weights in (*maps.neighborhood, *maps.temporal, *maps.spatial, *maps.fixed):
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert torch.all(maps.fixed[0][..., 3:] == 0) and torch.all(maps.spatial[0][..., 3:] == 0)
    with record_attention() as unused:
        pass
    assert not unused.temporal and torch.equal(after, plain)


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


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="conditioning"):
        PolicyConfig(conditioning="half")
    with pytest.raises(ValueError, match="keep_fraction"):
        PolicyConfig(keep_fraction=0.0)
    with pytest.raises(ValueError, match="hidden"):
        PolicyConfig(hidden=0)
    with pytest.raises(ValueError, match="temporal_scoring"):
        PolicyConfig(temporal_scoring="cosine")
    with pytest.raises(ValueError, match="context_form"):
        PolicyConfig(context_form="module3")
    with pytest.raises(ValueError, match="min_kept_frames"):
        PolicyConfig(min_kept_frames=0)


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


@pytest.mark.parametrize("version", ["0.2", "0.3", "0.5"])
def test_checkpoints_of_older_versions_load_with_the_settings_they_were_trained_with(
        version: str, tmp_path) -> None:
    from imitate.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    scoring = "additive" if version == "0.2" else "dot"
    scale = 10.0 if version == "0.5" else 1.0  # 0.2 and 0.3 fed positions in metres
    old = OneShotPolicy(PolicyConfig(conditioning="full", temporal_scoring=scoring,
                                     position_scale=scale, context_form="0.5"))
    path = save_checkpoint(tmp_path / "old.pt", old, env={}, suite_version=1, training={},
                           step=0)
    payload = torch.load(path, weights_only=True)
    del payload["model_state_sha256"]  # new in 0.8
    for name in ("context_form", "min_kept_frames"):  # both new in 0.6
        del payload["model_config"][name]
    if version != "0.5":
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
    assert loaded.config.position_scale == scale
    assert (loaded.config.context_form, loaded.config.min_kept_frames) == ("0.5", 1)
    demo, obs = make_demo(3, 60, seed=13), make_observation(3, seed=14)
    generator = torch.Generator().manual_seed(5)
    kept = old.subsample(demo, generator)
    assert kept.blocks.shape[1] == 3  # the 0.5 rule: floor(0.05 * 60) frames
    with torch.no_grad():
        torch.testing.assert_close(loaded(kept, *obs), old.eval()(kept, *obs))


def test_position_scale_is_validated_and_only_rescales_the_input() -> None:
    with pytest.raises(ValueError, match="position_scale"):
        PolicyConfig(position_scale=0.0)
    torch.manual_seed(0)
    metres = OneShotPolicy(PolicyConfig(conditioning="final", position_scale=1.0))
    decimetres = OneShotPolicy(PolicyConfig(conditioning="final", position_scale=10.0))
    decimetres.load_state_dict(metres.state_dict())
    demo, (blocks, gripper, mask) = make_demo(2, 4, seed=3), make_observation(2, seed=4)
    ten_times = DemoBatch(demo.blocks * 10.0, demo.gripper, demo.block_mask, demo.frame_mask)
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
