"""Prompts in miniature: tokenizer, computed captions, cross-attention shapes and padding masks."""
import pytest
import torch

from ddpm_course.checkpoint import load_checkpoint, save_checkpoint
from ddpm_course.data import digits
from ddpm_course.models import build_model, model_spec
from ddpm_course.models.text import (
    DIGIT_WORDS,
    MAX_TOKENS,
    NULL_PROMPT,
    PROMPTS,
    VOCAB,
    PromptUNet,
    PromptUNetConfig,
    caption_data,
    captions,
    cross_attention_maps,
    ink,
    prompt_ids,
    stroke_thresholds,
    tokenize,
)
from ddpm_course.models.unet import UNet, UNetConfig
from ddpm_course.schedules import linear_schedule

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tokenize_starts_every_prompt_and_masks_the_padding():
    tokens, mask = tokenize(["thin seven", "", "thick", "Nine"])
    assert tokens.shape == mask.shape == (4, MAX_TOKENS) and mask.dtype == torch.bool
    assert [[VOCAB[i] for i in row] for row in tokens.tolist()] == [
        ["<start>", "thin", "seven"], ["<start>", "<pad>", "<pad>"],
        ["<start>", "thick", "<pad>"], ["<start>", "nine", "<pad>"],
    ]
    assert mask.tolist() == [[True, True, True], [True, False, False], [True, True, False], [True, True, False]]


@pytest.mark.parametrize("bad", ["seven thin", "thin thick", "seven eight", "bold seven", "thin  seven  one"])
def test_tokenize_rejects_what_the_grammar_does_not_say(bad):
    with pytest.raises(ValueError, match="prompt"):
        tokenize([bad])


def test_prompts_are_every_sentence_once_and_ids_index_them():
    assert len(PROMPTS) == len(set(PROMPTS)) == 33 and PROMPTS[NULL_PROMPT] == ""
    ids = prompt_ids(list(PROMPTS))
    assert ids.tolist() == list(range(33))
    assert prompt_ids(["THIN  seven"]).item() == PROMPTS.index("thin seven")


def test_captions_follow_the_ink_within_each_class():
    data = digits(16, split="train")
    caps = captions(data.images, data.labels)
    amount = ink(data.images)
    thresholds = stroke_thresholds(data.images, data.labels)
    assert thresholds.shape == (10, 2) and torch.all(thresholds[:, 0] < thresholds[:, 1])
    for c in range(10):
        in_class = [i for i in range(len(caps)) if data.labels[i] == c]
        words = [caps[i] for i in in_class]
        assert set(words) <= {f"thin {DIGIT_WORDS[c]}", DIGIT_WORDS[c], f"thick {DIGIT_WORDS[c]}"}
        thin = amount[[i for i in in_class if caps[i].startswith("thin")]]
        thick = amount[[i for i in in_class if caps[i].startswith("thick")]]
        assert thin.max() < thick.min()  # every thin digit uses less ink than every thick one of its class
        assert abs(len(thin) - len(in_class) / 3) <= 2 and abs(len(thick) - len(in_class) / 3) <= 2


def test_caption_data_pairs_every_image_with_its_caption_and_a_partial_one():
    data = digits(16, split="test")
    images, ids = caption_data(data.images, data.labels, generator=torch.Generator().manual_seed(0))
    n = data.images.shape[0]
    assert images.shape == (2 * n, 1, 16, 16) and ids.shape == (2 * n,)
    full, partial = [PROMPTS[i] for i in ids[:n]], [PROMPTS[i] for i in ids[n:]]
    assert full == captions(data.images, data.labels)
    for f, p in zip(full, partial):
        assert len(p.split()) == 1 and p in f.split()
    assert {len(f.split()) for f in full} == {1, 2} and NULL_PROMPT not in ids


def _random_prompt_model() -> PromptUNet:
    torch.manual_seed(0)
    model = PromptUNet(PromptUNetConfig(base_channels=8, attention_levels=(1, 2), text_dim=8, dropout=0.0)).eval()
    with torch.no_grad():  # the output projections start at zero; open them so the prompt can matter
        for name, p in model.named_parameters():
            if ".proj." in name or name.startswith("unet.out_conv"):
                p.normal_(0, 0.2)
    return model


def test_cross_attention_shapes_and_padding_masks():
    model = _random_prompt_model()
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([5, 500, 990])
    y = prompt_ids(["thin seven", "three", ""])
    maps = cross_attention_maps(model, x, t, y)
    assert [name for name, _ in maps][:2] == ["unet.down.2.cross", "unet.down.4.cross"]
    for _, w in maps:
        assert w.shape[0] == 3 and w.shape[-1] == MAX_TOKENS and w.shape[1] in (4, 8)
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
        assert torch.all(w[1, ..., 2] == 0)  # "three": padding at the last position
        assert torch.all(w[2, ..., 0] == 1)  # the empty prompt: all attention on <start>


def test_padding_vectors_do_not_reach_the_image():
    model = _random_prompt_model()
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([100, 700])
    context, mask = model.encode(prompt_ids(["seven", "thick"]))
    changed = context.clone()
    changed[~mask] = 100.0  # garbage where the tokens are padding
    with torch.no_grad():
        a = model.unet(x, t, context=context, context_mask=mask)
        b = model.unet(x, t, context=changed, context_mask=mask)
        c = model.unet(x, t, context=changed, context_mask=torch.ones_like(mask))
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-3  # without the mask the garbage would leak in


def test_output_depends_on_the_prompt():
    model = _random_prompt_model()
    x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(3)).expand(4, -1, -1, -1)
    t = torch.full((4,), 300)
    with torch.no_grad():
        eps = model(x, t, prompt_ids(["thin seven", "thick seven", "seven", ""]))
    diffs = [(eps[i] - eps[j]).abs().max().item() for i in range(4) for j in range(i + 1, 4)]
    assert min(diffs) > 1e-4


def test_unet_context_arguments_are_checked():
    plain = UNet(UNetConfig(base_channels=8, groups=4))
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="no cross-attention"):
        plain(x, t, context=torch.randn(2, 3, 4), context_mask=torch.ones(2, 3, dtype=torch.bool))
    crossed = UNet(UNetConfig(base_channels=8, groups=4), context_dim=4)
    with pytest.raises(ValueError, match="context must be"):
        crossed(x, t)
    with pytest.raises(ValueError, match="context must be"):
        crossed(x, t, context=torch.randn(2, 3, 5), context_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="context_mask must be a bool"):
        crossed(x, t, context=torch.randn(2, 3, 4), context_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="at least one token"):
        crossed(x, t, context=torch.randn(2, 3, 4), context_mask=torch.tensor([[True, False, False], [False] * 3]))
    with pytest.raises(ValueError, match="prompt ids"):
        _random_prompt_model()(x, t, torch.tensor([0, NULL_PROMPT + 1]))


def test_prompt_model_round_trips_through_a_checkpoint(tmp_path):
    model = _random_prompt_model()
    arch, config = model_spec(model)
    assert arch == "PromptUNet" and build_model(arch, config).config == model.config
    save_checkpoint(tmp_path / "p", model, linear_schedule(10), sample_shape=(1, 16, 16))
    loaded = load_checkpoint(tmp_path / "p").model
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([3, 7]), prompt_ids(["thin one", "two"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, y), model(x, t, y))
