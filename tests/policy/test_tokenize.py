import pytest
from tokenizers import AddedToken

from eef.errors import UserError
from eef.policy.models import load_policy
from eef.policy.tiny import build_tiny_tokenizer
from eef.policy.tokenize import (
    IGNORE_INDEX,
    PromptEncoder,
    chat_messages,
    cut_markers,
    encode_messages,
    encode_prompt,
    encode_prompts,
    end_of_turn_token_ids,
)
from eef.types import Message

CONVERSATION = [
    Message(role="system", content="You are a shopping agent. Answer with Thought and Action."),
    Message(role="user", content="WebShop [SEP] Instruction: [SEP] a red hat under 20 dollars [SEP] Search"),
    Message(role="assistant", content="Thought: I search for it.\nAction: search[red hat]", loss=True),
    Message(role="user", content="Results [SEP] B001 [SEP] Red hat [SEP] $12.00 [SEP] B002 [SEP] Blue hat"),
    Message(role="assistant", content="Thought: The blue one.\nAction: click[B002]", loss=False),
    Message(role="user", content="Blue hat [SEP] Price: $9.00 [SEP] Buy Now"),
    Message(role="assistant", content="Thought: Wrong item, go back.\nAction: click[< Prev]", loss=True),
    Message(role="user", content="Results [SEP] B001 [SEP] Red hat"),
]


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return build_tiny_tokenizer([m.content for m in CONVERSATION], vocab_size=400)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    return load_policy("smollm2-135m").tokenizer


def trained_runs(tokenizer, labels: list[int]) -> list[str]:
    """The decoded stretches of consecutive labelled tokens."""
    runs, current = [], []
    for label in [*labels, IGNORE_INDEX]:
        if label != IGNORE_INDEX:
            current.append(label)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs


def check_masks(tokenizer, end_of_turn: str) -> None:
    encoded = encode_messages(tokenizer, CONVERSATION, max_length=4096)
    expected = [m.content + end_of_turn for m in CONVERSATION if m.role == "assistant" and m.loss]
    assert trained_runs(tokenizer, encoded.labels) == expected
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(encoded.labels, encoded.input_ids, strict=True))
    assert encoded.num_loss_tokens == sum(label != IGNORE_INDEX for label in encoded.labels)
    assert encoded.num_truncated_tokens == 0
    # The ids are those of the whole rendered conversation, as generation sees it.
    whole = tokenizer.apply_chat_template(chat_messages(CONVERSATION), tokenize=False)
    assert encoded.input_ids == tokenizer(whole, add_special_tokens=False)["input_ids"]


def test_tiny_labels_only_trained_agent_turns_and_end_of_turn(tiny_tokenizer):
    check_masks(tiny_tokenizer, "<|end|>")


@pytest.mark.slow
def test_smollm2_labels_only_trained_agent_turns_and_end_of_turn(smollm2_tokenizer):
    check_masks(smollm2_tokenizer, "<|im_end|>")


@pytest.mark.slow
def test_smollm2_default_system_prompt_is_context(smollm2_tokenizer):
    without_system = CONVERSATION[1:]
    encoded = encode_messages(smollm2_tokenizer, without_system, max_length=4096)
    text = smollm2_tokenizer.decode(encoded.input_ids)
    assert "You are a helpful AI assistant named SmolLM" in text  # the template injected it
    assert trained_runs(smollm2_tokenizer, encoded.labels) == [
        m.content + "<|im_end|>" for m in without_system if m.role == "assistant" and m.loss
    ]


def test_assistant_turns_without_loss_get_no_labels(tiny_tokenizer):
    untrained = [m.model_copy(update={"loss": False}) for m in CONVERSATION]
    encoded = encode_messages(tiny_tokenizer, untrained, max_length=4096)
    assert encoded.num_loss_tokens == 0
    assert len(encoded.input_ids) == len(encode_messages(tiny_tokenizer, CONVERSATION, 4096).input_ids)


def test_truncation_keeps_the_longest_prefix_of_whole_messages(tiny_tokenizer):
    full = encode_messages(tiny_tokenizer, CONVERSATION, max_length=4096)
    # Up to the end of the first agent turn (its message includes the newline after <|end|>).
    first_turn = encode_messages(tiny_tokenizer, CONVERSATION[:3], max_length=4096)
    just_short_of_second_turn = len(encode_messages(tiny_tokenizer, CONVERSATION[:4], 4096).input_ids) - 1
    cut = encode_messages(tiny_tokenizer, CONVERSATION, max_length=just_short_of_second_turn)
    assert cut.input_ids == first_turn.input_ids == full.input_ids[: len(cut.input_ids)]
    assert cut.labels == full.labels[: len(cut.labels)]
    assert cut.num_truncated_tokens == len(full.input_ids) - len(cut.input_ids)
    assert trained_runs(tiny_tokenizer, cut.labels) == [CONVERSATION[2].content + "<|end|>"]


def test_truncation_below_the_first_message_keeps_nothing(tiny_tokenizer):
    full = encode_messages(tiny_tokenizer, CONVERSATION, max_length=4096)
    cut = encode_messages(tiny_tokenizer, CONVERSATION, max_length=5)
    assert cut.input_ids == cut.labels == []
    assert cut.num_truncated_tokens == len(full.input_ids)


def test_prompt_is_the_conversation_plus_the_agent_header(tiny_tokenizer):
    prompt = encode_prompt(tiny_tokenizer, CONVERSATION[:2])
    context = encode_messages(tiny_tokenizer, CONVERSATION[:2], max_length=4096).input_ids
    assert prompt == context + tiny_tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"]


def test_prompts_of_many_conversations_are_each_ones_prompt(tiny_tokenizer):
    conversations = [CONVERSATION[:2], CONVERSATION[:4], CONVERSATION[:1]]
    assert encode_prompts(tiny_tokenizer, conversations) == [encode_prompt(tiny_tokenizer, c) for c in conversations]


def check_prompt_encoder(tokenizer) -> None:
    """Two conversations grown turn by turn, one rewritten midway: every prompt as whole tokenisation gives it."""
    encoder = PromptEncoder(tokenizer)
    assert encoder.markers, "the incremental path must be the one tested"
    other = [*CONVERSATION[:3], Message(role="user", content="  spaces [SEP] around <|end|> a marker  \n")]
    rewritten = [CONVERSATION[0], Message(role="user", content="A different start")]
    for turn, length in enumerate((2, 4, 6, 8)):
        conversations = [CONVERSATION[:length], other if turn else other[:2]]
        keys = ["a", "b"]
        if turn == 2:
            conversations.append(rewritten)
            keys.append("a-again")
            conversations[0] = rewritten + CONVERSATION[2:length]  # no longer extends what "a" kept
        assert encoder.encode(conversations, keys) == encode_prompts(tokenizer, conversations)
    encoder.forget("a")
    assert encoder.encode([CONVERSATION], ["a"]) == encode_prompts(tokenizer, [CONVERSATION])


def test_prompt_encoder_gives_the_ids_of_whole_tokenisation_turn_after_turn(tiny_tokenizer):
    check_prompt_encoder(tiny_tokenizer)


@pytest.mark.slow
def test_smollm2_prompt_encoder_gives_the_ids_of_whole_tokenisation(smollm2_tokenizer):
    check_prompt_encoder(smollm2_tokenizer)


@pytest.mark.parametrize("flag", ["lstrip", "single_word"])
def test_special_tokens_matched_by_what_precedes_them_are_not_cut_before(flag):
    tokenizer = build_tiny_tokenizer([m.content for m in CONVERSATION], vocab_size=400)
    tokenizer.add_special_tokens({"additional_special_tokens": [AddedToken("<|note|>", special=True, **{flag: True})]})
    tokenizer.chat_template = tokenizer.chat_template.replace("'<|end|>\\n' }}", "'<|end|>\\n <|note|>' }}")
    assert "<|note|>" in tokenizer.apply_chat_template(chat_messages(CONVERSATION[:2]), tokenize=False)
    assert "<|note|>" not in cut_markers(tokenizer) and "<|end|>" in cut_markers(tokenizer)
    encoder = PromptEncoder(tokenizer)
    for length in (2, 4, 6):
        assert encoder.encode([CONVERSATION[:length]], ["a"]) == encode_prompts(tokenizer, [CONVERSATION[:length]])


def test_a_special_token_inside_a_longer_added_token_makes_every_prompt_tokenised_whole():
    tokenizer = build_tiny_tokenizer([m.content for m in CONVERSATION], vocab_size=400)
    tokenizer.add_tokens([AddedToken("done<|end|>", special=False)])
    encoder = PromptEncoder(tokenizer)
    assert encoder.markers == ()
    other = [*CONVERSATION[:3], Message(role="user", content="done")]
    for length in (2, 4):
        conversations = [CONVERSATION[:length], other[:length]]
        assert encoder.encode(conversations, ["a", "b"]) == encode_prompts(tokenizer, conversations)


def test_end_of_turn_token(tiny_tokenizer):
    assert end_of_turn_token_ids(tiny_tokenizer) == [tiny_tokenizer.convert_tokens_to_ids("<|end|>")]


@pytest.mark.slow
def test_smollm2_end_of_turn_token(smollm2_tokenizer):
    assert end_of_turn_token_ids(smollm2_tokenizer) == [smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")]


def test_template_that_rewrites_earlier_turns_is_refused(tiny_tokenizer):
    tokenizer = build_tiny_tokenizer([m.content for m in CONVERSATION], vocab_size=400)
    # Marks the last message: every longer conversation renders its earlier turns differently.
    tokenizer.chat_template = tiny_tokenizer.chat_template.replace(
        "'<|end|>\\n' }}", "'<|end|>\\n' }}{% if loop.last %}(last){% endif %}"
    )
    with pytest.raises(UserError, match="prefixes"):
        encode_messages(tokenizer, CONVERSATION, max_length=4096)


def test_template_without_special_end_of_turn_is_refused():
    tokenizer = build_tiny_tokenizer([m.content for m in CONVERSATION], vocab_size=400)
    tokenizer.chat_template = (
        "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"
    )
    with pytest.raises(UserError, match="special token"):
        encode_messages(tokenizer, CONVERSATION, max_length=4096)


def test_a_special_token_added_after_an_encoding_is_found():
    # The special tokens are kept per tokenizer (reading them is slow): one added later must still count.
    tokenizer = build_tiny_tokenizer([m.content for m in CONVERSATION], vocab_size=400)
    tokenizer.chat_template = (
        "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '<|close|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    with pytest.raises(UserError, match="special token"):
        encode_messages(tokenizer, CONVERSATION, max_length=4096)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|close|>"]})
    encoded = encode_messages(tokenizer, CONVERSATION, max_length=4096)
    expected = [m.content + "<|close|>" for m in CONVERSATION if m.role == "assistant" and m.loss]
    assert trained_runs(tokenizer, encoded.labels) == expected
