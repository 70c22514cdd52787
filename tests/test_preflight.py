"""Everything a run can be refused for is found before any model loads, any work starts or any folder exists:
every role's spec (form, key, model file), every server it calls, the options that need the model (`p-ik
--layer`); a run that fails before its first sample leaves no folder to refuse the corrected command."""

from __future__ import annotations

import pytest
from stub_backend import StubBackend, run_stubbed

import alignlab.models
from alignlab.cli import main
from alignlab.engine.fit_check import longest
from alignlab.errors import AlignlabError
from alignlab.models.base import GenerateRequest, ScoreRequest
from alignlab.models.text import PromptTooLong, fit_error


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """The local models that load (each a StubBackend); server specs go to the real loader."""
    loaded: list[str] = []
    real = alignlab.models._load

    def load(spec, bare, **options):
        if alignlab.models.parse_spec(bare).kind in ("openai", "inspect"):
            return real(spec, bare, **options)
        loaded.append(spec)
        return StubBackend(spec)

    monkeypatch.setattr(alignlab.models, "_load", load)
    return loaded


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nonsense:::", "unknown model spec"),
        ("llamacpp:/no/such/model.gguf", "model file not found: /no/such/model.gguf"),
        ("hf:./no/such/folder", "model folder not found"),
        ("openai:m@http://user:sk-secret@127.0.0.1:8000/v1", "key"),
    ],
)
def test_check_spec_refuses_without_loading(spec, says, loads):
    with pytest.raises(AlignlabError, match=says):
        alignlab.models.check_spec(spec)
    assert not loads


def test_check_spec_passes_what_can_load(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    for spec in ("smollm2-135m", f"llamacpp:{tmp_path / 'm.gguf'}", "hf:org/name", "openai:m@http://h:1/v1"):
        alignlab.models.check_spec(spec)


@pytest.mark.parametrize(
    ("command", "flag", "says"),
    [
        (["generate", "evals", "--judge", "nonsense:::", "--behavior", "b", "--description", "d", "--n", "2"],
         "--judge", "unknown model spec"),
        (["cai", "revise", "--feedback-model", "nonsense:::", "--n", "2"], "--feedback-model", "unknown model"),
        (["cai", "revise", "--feedback-model", "llamacpp:/nope/m.gguf", "--n", "2"], "--feedback-model",
         "model file not found"),
        (["redteam", "--judge", "openai:m@http://127.0.0.1:9/v1", "--n", "2"], "--judge", "cannot reach"),
    ],
)  # fmt: skip
def test_a_pipelines_bad_spec_or_dead_server_fails_before_any_model_loads(
    command, flag, says, loads, tmp_path, capsys
):
    out = tmp_path / "run"
    assert main([*command, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: {flag}: " in err and says in err, err
    assert not loads, "a model loaded before the bad spec was found"
    assert not out.exists()


class Layered(StubBackend):
    """Features of 31 hidden-state layers, as the bundled 135M model has."""

    def features(self, requests):
        for r in requests:
            if not -31 <= r.layer < 31:
                raise AlignlabError(f"layer {r.layer} out of range: model has 31 hidden-state layers")
        return super().features(requests)


def test_p_ik_layer_out_of_range_fails_before_any_sampling_and_leaves_no_folder(tmp_path):
    backend = Layered("stub")
    with pytest.raises(AlignlabError, match="layer 999 out of range"):
        run_stubbed("p-ik", backend, tmp_path / "run", limit=4, layer=999)
    assert backend.calls["generate"] == 0 and not (tmp_path / "run").exists()
    # the corrected command then runs in the same folder
    run_stubbed("p-ik", Layered("stub"), tmp_path / "run", limit=4, layer=-2)


class NoRoom(StubBackend):
    def score(self, requests):
        raise PromptTooLong(0, "prompt of 5000 tokens; the context holds 2048")


def test_a_run_failing_before_its_first_sample_takes_its_folder_back(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    for out in (tmp_path / "run", tmp_path / "mine"):
        with pytest.raises(AlignlabError, match="context holds 2048"):
            run_stubbed("law-school", NoRoom("stub"), out, limit=4)
    assert not (tmp_path / "run").exists()
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]  # the user's folder stays


class Windowed(StubBackend):
    """A model whose window holds `limit` characters of prompt (one token a character)."""

    def __init__(self, limit: int) -> None:
        super().__init__("stub")
        self.limit = limit

    def fit_error(self, request):
        return fit_error(request, list, str, self.limit, self.spec, f"{self.limit} positions")


def test_a_prompt_past_the_window_fails_before_any_request_naming_its_item(tmp_path):
    # calibration's few-shot prompts: the shots asked make every prompt long; one past the window is named
    need = {}  # a task's longest request: its prompt and longest continuation
    for (item, condition), asked in _first_requests("calibration", limit=6, shots=5):
        sizes = [
            len(r.prompt) + max(map(len, r.continuations))
            for r in (asked if isinstance(asked, list) else [asked])
        ]
        need[f"item {item} (condition {condition})"] = max(sizes)
    limit = max(need.values()) - 1
    backend = Windowed(limit=limit)
    with pytest.raises(AlignlabError, match="a score request cannot run: prompt of") as refused:
        run_stubbed("calibration", backend, tmp_path / "run", limit=6, shots=5)
    named = str(refused.value).split(": a score")[0]
    assert need[named] > limit and sum(n > limit for n in need.values()) < len(need)
    assert backend.calls == {"score": 0, "generate": 0, "features": 0} and not (tmp_path / "run").exists()
    run_stubbed("calibration", Windowed(limit=limit + 1), tmp_path / "run", limit=6, shots=5)


def _first_requests(name: str, limit: int, **values) -> list:
    from stub_backend import DATA

    from alignlab import experiments
    from alignlab.evaluate import _first_requests
    from alignlab.experiments import DataSource

    experiment = experiments.get(name)
    settings = experiment.settings(**values)
    items = experiment.items(DataSource(data_dir=str(DATA)), limit, settings).items
    asked = [(i, experiment.item_id(i), c) for c in settings.conditions for i in items]
    return list(_first_requests(experiment, asked, settings))


def test_fit_error_counts_what_one_forward_holds():
    chars = list  # one token a character
    score = ScoreRequest(prompt="abcd", continuations=(" xy", " z"))
    assert fit_error(score, chars, str, 7, "m", "w") is None  # 4 + the longer continuation's 3
    assert "prompt of 7 tokens" in fit_error(score, chars, str, 6, "m", "6 positions")
    generate = GenerateRequest(prompt="abcd", max_tokens=5)
    assert fit_error(generate, chars, str, 5, "m", "w") is None
    assert "must also hold the generated tokens" in fit_error(generate, chars, str, 4, "m", "w")
    assert fit_error(generate, chars, str, None, "m", "w") is None  # a window not known is not checked


def test_longest_keeps_the_longest_few_of_each_kind_in_task_order_on_ties():
    firsts = [
        (n, ScoreRequest(prompt="x" * size, continuations=(" a",))) for n, size in enumerate([3, 9, 9, 1, 5])
    ]
    firsts.append(
        ("g", [GenerateRequest(prompt="y" * 4, max_tokens=1), GenerateRequest(prompt="y", max_tokens=1)])
    )
    picked = longest(firsts, per_kind=3)
    assert [key for key, _ in picked] == [
        "g",
        "g",
        1,
        2,
        4,
    ]  # kinds in order; within one, longest, then first


def test_longest_orders_one_tasks_equal_requests_without_comparing_them():
    # calibration's true/false prompts: one task asks several requests of the same length at once
    same = [ScoreRequest(prompt="z" * 6, continuations=(f" {c}",)) for c in "abcd"]
    picked = longest([("t", same), ("u", same[:1])], per_kind=2)
    assert [(key, request.continuations) for key, request in picked] == [("t", (" a",)), ("t", (" b",))]
