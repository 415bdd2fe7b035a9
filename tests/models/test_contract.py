"""Conformance suite: every registered model meets the RatingModel contract."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
import torch

from embrec.config import TrainConfig
from embrec.data.synthetic import generate
from embrec.errors import ConfigError
from embrec.models import MODELS, model_config_from_dict
from embrec.models.base import (
    ConcatTowerModel,
    DropoutMasks,
    EmbeddingModel,
    HandStepModel,
    KernelModel,
    RatingModel,
    add_decay,
)
from embrec.training.batches import Columns
from embrec.training.closed_form import SolvedWithFit
from embrec.training.fit import fit
from embrec.training.step import make_step

SMALL = {  # quick-to-train settings for each model (tanh: no dead-unit warnings on tiny data)
    "biased-mf": {"embedding_dim": 8},
    "gmf": {"embedding_dim": 8, "hidden": (4,), "dropout": 0.1, "activation": "tanh",
            "init": "normal"},
    "mlp": {"embedding_dim": 8, "hidden": (16, 8), "dropout": (0.1, 0.1, 0.1),
            "activation": "tanh", "init": "normal"},
    "neumf": {"embedding_dim": 8, "mlp_embedding_dim": 8, "hidden": (16, 8), "dropout": 0.1,
              "activation": "tanh"},
    "popular": {},
    "ease": {"l2": 10.0},
    "bayesian-fm": {"embedding_dim": 4, "sweeps": 6, "burn_in": 3},
    "edlae": {"l2": 10.0, "dropout": 0.3},
    "autorec": {"hidden": 8, "epochs": 5},
    "blend": {"components": (
        {"model": "biased-mf", "config": {"embedding_dim": 4, "init_std": 0.05},
         "train": {"epochs": 2}},
        {"model": "autorec", "config": {"hidden": 4, "epochs": 3}})},
}


def closed(name: str) -> bool:
    """Fitted by its own solver (popular, ease, edlae, autorec), not by fit()'s embedding loop."""
    return bool(getattr(MODELS[name], "closed_form", False))


def ranks_only(name: str) -> bool:
    """Its scores rank items and are not ratings (popular, ease, edlae)."""
    return getattr(MODELS[name], "scores", "rating") == "ranking"


def small(name: str, **extra: Any) -> Any:
    if closed(name):
        extra.pop("bounded", None)  # scores are not ratings: nothing to bound
    return MODELS[name](**{**SMALL[name], **extra})


def solved(model: Any, name: str) -> Any:
    """Fit a closed-form model on random ratings of its size (a trainable one is returned as is)."""
    if closed(name):
        data = generate(n_users=model.n_users, n_items=model.n_items,
                        n_ratings=model.n_users * model.n_items // 2, rank=2, seed=3)
        if isinstance(model, SolvedWithFit):  # a blend: its parts are trained by fit
            model.solve_with(data.ratings, fit)
        else:
            model.solve(data.ratings)
    return model


def scores(rec: Any, users: Any, items: Any) -> Any:
    kind = "score" if rec.scores == "ranking" else "rating"
    return rec.predict(users, items, kind=kind)


def reset_masks(model: RatingModel, generator: torch.Generator | None = None) -> None:
    model.reset_masks(generator)


@pytest.fixture(params=sorted(MODELS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_registry_names_match_configs() -> None:
    assert sorted(MODELS) == ["autorec", "bayesian-fm", "biased-mf", "blend", "ease", "edlae",
                              "gmf", "mlp", "neumf", "popular"]
    for key, config in MODELS.items():
        assert config.name == key


def test_output_shape_and_dtype(name: str) -> None:
    model = small(name).build(7, 5, scale=(1.0, 5.0), mean=3.0).eval()
    user, item = torch.tensor([0, 3, 6]), torch.tensor([4, 0, 2])
    out = model(user, item)
    assert out.shape == (3,) and out.dtype == torch.float32
    assert model.user_vectors(user).shape[0] == 3 and model.item_vectors(item).shape[0] == 3
    if name == "popular":
        with pytest.raises(ConfigError, match="has no item similarity"):
            model.item_factors()
    else:
        assert model.item_factors().shape[0] == 5


@pytest.mark.filterwarnings("ignore::embrec.errors.TrainingWarning")  # a tiny fit may be constant
def test_score_matrix_agrees_with_pairwise_score(name: str) -> None:
    torch.manual_seed(0)
    model = solved(small(name, bounded=True).build(6, 9, scale=(1.0, 5.0), mean=3.0), name).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        users = model.user_vectors(torch.arange(6))
        items = model.item_vectors(torch.arange(9))
        fast = model.score_matrix(users, items)
        pairs = torch.stack([model(torch.full((9,), u), torch.arange(9)) for u in range(6)])
    assert fast.shape == (6, 9)
    torch.testing.assert_close(fast, pairs, rtol=1e-5, atol=1e-5)


HAND_STEPS = {"biased-mf", "gmf", "mlp"}
KERNELS = {"biased-mf"}


def test_the_contract_is_met(name: str) -> None:
    """Every model is a RatingModel; a trained one's tables and dense parameters partition
    its parameters; the optional hand-written paths are the ones the models declare."""
    model = small(name).build(7, 5, scale=(1.0, 5.0), mean=3.0)
    assert isinstance(model, RatingModel)
    assert isinstance(model, HandStepModel) == (name in HAND_STEPS)
    assert isinstance(model, KernelModel) == (name in KERNELS)
    assert isinstance(model, ConcatTowerModel) == (name == "mlp")
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    if isinstance(model, EmbeddingModel):
        tables = {id(model.user_embedding.weight), id(model.item_embedding.weight)}
        dense = {id(p) for p in model.dense_parameters()}
        assert not tables & dense and tables | dense == {id(p) for p in model.parameters()}


def test_dropout_draws_only_from_the_listed_masks(name: str) -> None:
    """Seeded dropout, resume and 2 ranks = 1 rest on this: a train-mode forward draws its
    randomness from ``dropout_masks()`` alone, so the same generator gives the same output
    whatever torch's global generator holds, and replacing the masks reaches every draw."""
    if closed(name):
        pytest.skip(f"{name} is fitted in closed form")
    model = small(name).build(9, 8, scale=(1.0, 5.0), mean=3.5).train()
    user, item = torch.randint(0, 9, (64,)), torch.randint(0, 8, (64,))
    outputs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        model.reset_masks(torch.Generator().manual_seed(3))
        with torch.no_grad():
            outputs.append(model(user, item))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    masks = model.dropout_masks()
    assert all(isinstance(m, DropoutMasks) for m in masks)
    assert bool(masks) == (name in {"gmf", "mlp", "neumf"})  # SMALL gives those dropout
    taken: list[int] = []

    class Counting(DropoutMasks):
        def take(self, like: torch.Tensor) -> torch.Tensor:
            taken.append(like.shape[1])
            return super().take(like)

    made = model.replace_masks(lambda old, width: Counting(old.rate))
    assert model.dropout_masks() == made and len(made) == len(masks)
    with torch.no_grad():
        model(user, item)
    assert len(taken) == len(made)


def test_add_decay_is_the_gradient_of_the_per_use_penalty() -> None:
    rows = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    penalty = (0.3 * rows[:, :4].square().sum() + 0.1 * rows[:, 4:].square().sum()) / 4
    penalty.backward()
    grad = torch.zeros(6, 5, dtype=torch.float64)
    add_decay(grad, rows.detach(), 1, 0.3, 0.1, 4)
    torch.testing.assert_close(grad, rows.grad)
    plain = torch.zeros(6, 5, dtype=torch.float64)
    add_decay(plain, rows.detach(), 0, 0.3, 0.1, 4)  # no bias columns: every column decays
    torch.testing.assert_close(plain, rows.detach() * 0.15)


def test_gradients_reach_both_embeddings(name: str) -> None:
    if closed(name):
        pytest.skip(f"{name} is fitted in closed form")
    model = small(name).build(7, 5, scale=(1.0, 5.0), mean=3.0).train()
    loss = (model(torch.tensor([1, 2]), torch.tensor([3, 4])) - 4.0).square().mean()
    loss.backward()
    assert model.user_embedding.weight.grad[1:3].abs().sum() > 0
    assert model.item_embedding.weight.grad[3:5].abs().sum() > 0


@pytest.mark.parametrize(("bounded", "activation", "biases"),
                         [(False, "relu", True), (True, "tanh", True), (False, "tanh", False)])
def test_fast_step_equals_autograd(name: str, bounded: bool, activation: str,
                                   biases: bool) -> None:
    """A hand-written step gives exactly the reference step's outputs, dropout included:
    the predictions, every gathered row's gradient and every dense parameter's gradient."""
    if closed(name):
        pytest.skip(f"{name} is fitted in closed form")
    extra = {} if name == "biased-mf" else {"activation": activation, "biases": biases}
    model = small(name, bounded=bounded, **extra).build(9, 8, scale=(1.0, 5.0), mean=3.5)
    model = model.double()
    assert model.bias_columns == int(biases or name == "biased-mf")
    if not isinstance(model, HandStepModel):
        pytest.skip(f"{name} has no hand-written step: autograd is its only path")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    batch = Columns(torch.randint(0, 9, (32,)), torch.randint(0, 8, (32,)),
                    torch.rand(32, dtype=torch.float64) * 4 + 1)
    config = TrainConfig(weight_decay=0.05, bias_weight_decay=0.02)
    model.train()
    outputs, dense = [], []
    for path in ("autograd", "auto"):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        reset_masks(model, torch.Generator().manual_seed(3))
        step, taken = make_step(model, dataclasses.replace(config, step_path=path))
        assert taken == ("autograd" if path == "autograd" else "fast")
        outputs.append(step(batch))
        dense.append([p.grad.clone() for n, p in model.named_parameters()
                      if "embedding" not in n])
    reference, fast = outputs
    for field in ("prediction", "user_index", "user_grad", "item_index", "item_grad"):
        torch.testing.assert_close(getattr(fast, field), getattr(reference, field))
    for want, got in zip(*dense, strict=True):
        torch.testing.assert_close(got, want)


def test_fast_path_trains_to_the_same_weights(name: str, tiny: Any) -> None:
    """Whole trainings through the fast path and through autograd end at the same weights."""
    if closed(name):
        pytest.skip(f"{name} is fitted in closed form")
    config = TrainConfig(epochs=2, batch_size=64, learning_rate=0.01, weight_decay=0.02,
                         bias_weight_decay=0.01, seed=5)
    fast = fit(small(name), tiny, config)
    reference = fit(small(name), tiny, dataclasses.replace(config, step_path="autograd"))
    assert reference.metadata["step_path"] == "autograd"
    expected = "fast" if isinstance(reference.model, HandStepModel) else "autograd"
    assert fast.metadata["step_path"] == expected
    for a, b in zip(fast.model.parameters(), reference.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_seeded_fit_is_deterministic(name: str, tiny: Any) -> None:
    config = TrainConfig(epochs=2, batch_size=64, learning_rate=0.01, seed=11)
    first = fit(small(name), tiny, config)
    second = fit(small(name), tiny, config)
    u, i = tiny.users.id_of(tiny.user[:50]), tiny.items.id_of(tiny.item[:50])
    np.testing.assert_array_equal(scores(first, u, i), scores(second, u, i))
    assert first.metadata["seed"] == 11


def test_save_load_gives_identical_predictions(name: str, tiny: Any, tmp_path: Any) -> None:
    from embrec.recommender import load

    rec = fit(small(name), tiny, TrainConfig(epochs=2, batch_size=64, learning_rate=0.01, seed=1))
    loaded = load(rec.save(tmp_path / name))
    u, i = tiny.users.id_of(tiny.user[:40]), tiny.items.id_of(tiny.item[:40])
    np.testing.assert_array_equal(scores(rec, u, i), scores(loaded, u, i))
    assert loaded.scores == rec.scores


def test_config_round_trips_through_json(name: str) -> None:
    config = small(name, bounded=True)
    data = json.loads(json.dumps(config.to_dict()))
    assert MODELS[name].from_dict(data) == config
    assert model_config_from_dict(name, data) == config


TYPOS = {"popular": ("dampng", "damping"), "ease": ("max_item", "max_items"),
         "bayesian-fm": ("burnin", "burn_in"),
         "edlae": ("dropot", "dropout"), "autorec": ("hiden", "hidden"),
         "blend": ("component", "components")}
INVALID = {  # per model: (a bad number, its message), (a misspelt choice, the suggestion)
    "popular": ({"damping": -1.0}, "damping=-1.0", {"by": "cont"}, "count"),
    "ease": ({"l2": 0.0}, "l2=0.0", {"values": "binry"}, "binary"),
    "edlae": ({"dropout": -0.1}, "dropout=-0.1", {"values": "binry"}, "binary"),
    "autorec": ({"hidden": 0}, "hidden=0", {"based": "iten"}, "item"),
    "blend": ({**SMALL["blend"], "validation": 0.0}, "validation=0.0",
              {**SMALL["blend"], "target": "ratin"}, "rating"),
    "bayesian-fm": ({"burn_in": 6, "sweeps": 6}, "burn_in=6", {"priors": "grup"}, "group"),
}


def test_from_dict_rejects_unknown_key_with_suggestion(name: str) -> None:
    typo, field = TYPOS.get(name, ("embeding_dim", "embedding_dim"))
    with pytest.raises(ConfigError, match=f"did you mean '{field}'"):
        MODELS[name].from_dict({typo: 4})


def test_invalid_values_are_rejected(name: str) -> None:
    number, message, choice, suggestion = INVALID.get(
        name, ({"embedding_dim": 0}, "embedding_dim=0", {"init": "kers"}, "keras"))
    with pytest.raises(ConfigError, match=message):
        MODELS[name](**number)
    with pytest.raises(ConfigError, match=f"did you mean '{suggestion}'"):
        MODELS[name](**choice)


def test_unknown_model_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'neumf'"):
        model_config_from_dict("numf", {})


PLANTED = {  # a working model gets within these factors of the noise floor; a broken one ~3.9x
    "biased-mf": ({"embedding_dim": 8}, 1.25),
    "gmf": ({"embedding_dim": 8, "hidden": (), "dropout": 0.0, "init": "normal"}, 1.25),
    "mlp": ({"embedding_dim": 16, "hidden": (32,), "dropout": (0.0, 0.0), "init": "normal"}, 1.35),
    "neumf": ({"embedding_dim": 4, "mlp_embedding_dim": 8, "hidden": (16,),
               "activation": "tanh"}, 1.3),
    "bayesian-fm": ({"embedding_dim": 4, "sweeps": 40, "burn_in": 10}, 1.25),
    "autorec": ({"hidden": 50, "l2": 10.0, "learning_rate": 0.03, "validation": 0.0,
                 "epochs": 150}, 1.5),  # an autoencoder of 200 item rows: 1.39x measured
    "blend": ({"refit": False, "components": (
        {"model": "biased-mf", "config": {"embedding_dim": 8},
         "train": {"epochs": 25, "batch_size": 256, "learning_rate": 0.02,
                   "weight_decay": 0.01, "schedule": "onecycle"}},
        {"model": "autorec", "config": {"hidden": 50, "l2": 10.0, "learning_rate": 0.03,
                                        "validation": 0.0, "epochs": 150}})}, 1.25),
}


@pytest.mark.slow
def test_reaches_the_noise_floor_on_planted_data(name: str) -> None:
    """On low-rank data with known noise a working model nearly reaches the floor."""
    if ranks_only(name):
        pytest.skip(f"{name} ranks items; it predicts no rating")
    data = generate(n_users=300, n_items=200, n_ratings=24_000, rank=3, noise=0.3,
                    round_ratings=False, seed=5)
    ratings = data.ratings
    order = np.random.default_rng(0).permutation(len(ratings))
    train, test = ratings.take(order[:20_000], reindex=False), order[20_000:]
    settings, slack = PLANTED[name]
    config = TrainConfig(epochs=25, batch_size=256, learning_rate=0.01 if name == "mlp" else 0.02,
                         weight_decay=0.0 if name == "mlp" else 0.01, schedule="onecycle", seed=0)
    rec = fit(MODELS[name](**settings), train, config)
    truth = ratings.rating[test]
    predicted = rec.predict(ratings.users.id_of(ratings.user[test]),
                            ratings.items.id_of(ratings.item[test]))
    floor = float(np.sqrt(np.mean((data.best_prediction(ratings.user[test],
                                                        ratings.item[test]) - truth) ** 2)))
    rmse = float(np.sqrt(np.mean((predicted - truth) ** 2)))
    baseline = float(np.std(truth))
    assert rmse < slack * floor, (rmse, floor, baseline)
    assert rmse < 0.7 * baseline


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_gpu_agree(name: str, tiny: Any) -> None:
    """The same weights predict the same on both devices; training on CUDA works as well."""
    config = TrainConfig(epochs=3, batch_size=64, learning_rate=0.01, seed=4)
    rec = fit(small(name), tiny, config)
    user, item = torch.as_tensor(tiny.user[:200]).long(), torch.as_tensor(tiny.item[:200]).long()
    if closed(name):  # solved on the GPU, the same scores as on the CPU
        on_gpu = fit(small(name), tiny, dataclasses.replace(config, device="cuda"))
        assert on_gpu.metadata["device"].startswith("cuda")
        u, i = tiny.users.id_of(tiny.user[:200]), tiny.items.id_of(tiny.item[:200])
        np.testing.assert_allclose(scores(on_gpu, u, i), scores(rec, u, i), rtol=1e-4,
                                   atol=1e-4)
        return
    with torch.no_grad():
        on_cpu = rec.model(user, item)
        on_gpu = rec.model.to("cuda")(user.cuda(), item.cuda()).cpu()
    torch.testing.assert_close(on_cpu, on_gpu, rtol=1e-4, atol=1e-4)
    trained = fit(small(name), tiny, dataclasses.replace(config, device="cuda"))
    assert trained.metadata["device"].startswith("cuda")
    assert abs(trained.history[-1]["train_rmse"] - rec.history[-1]["train_rmse"]) < 0.1


@pytest.mark.parametrize("tower", ["mlp", "neumf"])
def test_cached_item_half_follows_weight_and_item_changes(tower: str) -> None:
    """The item half of the first layer is reused between calls, but never when stale."""
    model = small(tower).build(12, 30, scale=(1.0, 5.0), mean=3.0).eval()
    users, items = torch.arange(12), torch.arange(30)
    with torch.no_grad():
        catalogue = model.item_vectors(items)
        first = model.score_matrix(model.user_vectors(users), catalogue)
        again = model.score_matrix(model.user_vectors(users), catalogue)
        pairs = model(users.repeat_interleave(30), items.repeat(12)).reshape(12, 30)
        model.tower.layer(0).weight.mul_(1.5)  # an optimiser step, in place
        changed = model.score_matrix(model.user_vectors(users), catalogue)
        changed_fresh = model.score_matrix(model.user_vectors(users), catalogue.clone())
        catalogue.mul_(0.5)
        moved = model.score_matrix(model.user_vectors(users), catalogue)
        moved_fresh = model.score_matrix(model.user_vectors(users), catalogue.clone())
    torch.testing.assert_close(first, pairs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, changed)
    torch.testing.assert_close(changed, changed_fresh)
    torch.testing.assert_close(moved, moved_fresh)
