"""Token ids and loss labels for one conversation, through the model's own chat template.

Labels are the token ids on the agent's trained turns (assistant messages with ``loss=True``: their
content and the end-of-turn token the template closes them with) and -100 everywhere else: the
system prompt (also one the template injects by itself), user turns (observations) and role headers.

The rendered conversation is cut where trained spans begin and end and where messages end, and each
piece is tokenised on its own. Masks are therefore exact by construction. The cuts fall next to special
tokens (end-of-turn, role headers) or after a role header's newline, where byte-level BPE does not merge
across, so the ids equal those of tokenising the whole rendered text, as the rollout engine does.

Truncation keeps the start: the longest prefix of whole messages that fits ``max_length``. A rollout
never truncates its history (it stops with ``context_limit`` instead), so a prefix is exactly what the
policy sees at inference, and every kept label keeps its true context, the instruction included.
Dropping the start or the middle would train actions on histories the policy never sees (and lose the
goal); the price of keeping the start is that the last turns of over-long trajectories go untrained,
counted in ``num_truncated_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from weakref import WeakKeyDictionary

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from eef.errors import UserError
from eef.types import Message

IGNORE_INDEX = -100  # the label that transformers' loss skips
_PROBE = "Thought: probe\nAction: probe[1]"


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where no loss; else equal to input_ids (the model shifts them)
    num_truncated_tokens: int  # tokens dropped from the end to fit max_length

    @property
    def num_loss_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def chat_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """The form chat templates take. (``Message.model_dump`` is the on-disk ShareGPT form: ``human``/``gpt``.)"""
    return [{"role": m.role, "content": m.content} for m in messages]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]) -> list[int]:
    """Token ids of ``messages`` followed by the header of the agent's next turn: what generation continues."""
    return encode_prompts(tokenizer, [messages])[0]


def encode_prompts(tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Sequence[Message]]) -> list[list[int]]:
    """:func:`encode_prompt` of each conversation, in one call of the tokenizer (a fast tokenizer
    encodes a batch on all cores: half the time of one call per conversation for 64 of them)."""
    texts = [_render(tokenizer, chat_messages(messages), generation_prompt=True) for messages in conversations]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


class PromptEncoder:
    """:func:`encode_prompts` for conversations that grow turn by turn, tokenising only what is new.

    A conversation's next prompt renders as its previous prompt plus the agent's reply and the next
    observation. The ids of its previous text up to the last special token in it are kept, and only
    the rest is tokenised (the reply, the observation, the template's headers): each token once per
    conversation, instead of the whole history every turn. A tokenizer splits a text at special tokens
    before anything else, so the ids are those of tokenising the whole text; :func:`cut_markers`
    checks that once per tokenizer, and where it does not hold, or a conversation's text no longer
    begins with what was kept of it, the text is tokenised whole.

    ``encode(conversations, keys)``: ``keys[i]`` names conversation i; ``forget(key)`` drops what
    was kept of it (an ended episode)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer
        self.markers = cut_markers(tokenizer)
        self._kept: dict[str, tuple[str, list[int]]] = {}  # key -> (text up to a cut, its ids)

    def encode(self, conversations: Sequence[Sequence[Message]], keys: Sequence[str]) -> list[list[int]]:
        if not self.markers:
            return encode_prompts(self.tokenizer, conversations)
        texts = [_render(self.tokenizer, chat_messages(messages), generation_prompt=True) for messages in conversations]
        heads, tails, cuts = [], [], []
        for key, text in zip(keys, texts, strict=True):
            head, head_ids = self._kept.get(key, ("", []))
            if not text.startswith(head):
                head, head_ids = "", []
            tail = text[len(head) :]
            heads.append((head, head_ids))
            tails.append(tail)
            # The next cut: the tail's last special token (not its first character, which may be one already).
            cuts.append(max(0, *(tail.rfind(marker, 1) for marker in self.markers)))
        pieces = [piece for tail, cut in zip(tails, cuts, strict=True) for piece in (tail[:cut], tail[cut:])]
        piece_ids = self.tokenizer(pieces, add_special_tokens=False)["input_ids"]
        prompts = []
        for index, (key, (head, head_ids)) in enumerate(zip(keys, heads, strict=True)):
            before_cut, after_cut = piece_ids[2 * index], piece_ids[2 * index + 1]
            self._kept[key] = (head + tails[index][: cuts[index]], head_ids + before_cut)
            prompts.append(head_ids + before_cut + after_cut)
        return prompts

    def forget(self, key: str) -> None:
        self._kept.pop(key, None)


def cut_markers(tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    """The special tokens a text can be cut before without changing its ids, or none.

    A special token splits the text before the tokenizer looks at anything else, unless it also eats
    the whitespace before it (``lstrip``), matches only as a whole word (which depends on what
    precedes it), is matched after normalisation, or lies inside a longer added token; a probe
    conversation, cut before each of them, must give the ids it gives whole."""
    added = list(tokenizer.added_tokens_decoder.values())
    markers = tuple(
        token.content
        for token in added
        if token.special and not (token.lstrip or token.single_word or token.normalized)
    )
    contents = [token.content for token in added]
    if any(marker in content and marker != content for marker in markers for content in contents):
        return ()
    chat = [
        {"role": "system", "content": "Probe the cuts.  "},
        {"role": "user", "content": " Observation:\n  a [SEP] b\n"},
        {"role": "assistant", "content": _PROBE},
        {"role": "user", "content": "\tNext observation "},
    ]
    try:
        text = _render(tokenizer, chat, generation_prompt=True)
    except TemplateError:  # a template that takes no system message: probe without one
        text = _render(tokenizer, chat[1:], generation_prompt=True)
    starts = sorted({0, len(text), *(i for marker in markers for i in _occurrences(text, marker))})
    pieces = tokenizer([text[a:b] for a, b in pairwise(starts)], add_special_tokens=False)["input_ids"]
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    return markers if [token for piece in pieces for token in piece] == whole else ()


def _occurrences(text: str, part: str) -> list[int]:
    found, start = [], text.find(part)
    while start != -1:
        found.append(start)
        start = text.find(part, start + 1)
    return found


def encode_messages(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], max_length: int) -> Encoded:
    """Ids and labels of the conversation, truncated to the longest prefix of whole messages within ``max_length``."""
    chat = chat_messages(messages)
    full = _render(tokenizer, chat)
    message_ends = [_prefix_length(tokenizer, full, chat[: i + 1]) for i in range(len(chat))]
    spans = [_trained_span(tokenizer, full, chat, i, message_ends[i]) for i, m in enumerate(messages) if _trained(m)]

    cuts = sorted({0, len(full), *message_ends, *(bound for span in spans for bound in span)})
    pieces = list(pairwise(cuts))
    piece_ids = tokenizer([full[a:b] for a, b in pieces], add_special_tokens=False)["input_ids"]

    input_ids: list[int] = []
    labels: list[int] = []
    kept = 0  # tokens up to the last message end that fits
    closes_message = set(message_ends[:-1])  # text after the last message end belongs to the last message
    for (start, end), ids in zip(pieces, piece_ids, strict=True):
        trained = any(a <= start and end <= b for a, b in spans)
        input_ids.extend(ids)
        labels.extend(ids if trained else [IGNORE_INDEX] * len(ids))
        if (end in closes_message or end == len(full)) and len(input_ids) <= max_length:
            kept = len(input_ids)
    return Encoded(input_ids=input_ids[:kept], labels=labels[:kept], num_truncated_tokens=len(input_ids) - kept)


def end_of_turn_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Tokens that end an agent turn: the special token the chat template closes assistant turns
    with, then eos when it differs (some models emit either)."""
    text = _render(tokenizer, [{"role": "user", "content": "probe"}, {"role": "assistant", "content": _PROBE}])
    after = text.index(_PROBE) + len(_PROBE)
    _, token = _first_special_token(tokenizer, text[after:])
    ids = [tokenizer.convert_tokens_to_ids(token)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _trained(message: Message) -> bool:
    return message.role == "assistant" and message.loss


def _render(tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, str]], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation_prompt)


def _prefix_length(
    tokenizer: PreTrainedTokenizerBase, full: str, chat: list[dict[str, str]], generation_prompt: bool = False
) -> int:
    """Length of the rendering of ``chat`` (a prefix of the conversation), which must begin ``full``."""
    prefix = _render(tokenizer, chat, generation_prompt)
    if not full.startswith(prefix):
        raise UserError(
            f"the chat template of {tokenizer.name_or_path or 'this model'} renders earlier turns differently as the "
            "conversation grows; eef needs a template whose renderings of a conversation's prefixes are its prefixes"
        )
    return len(prefix)


def _trained_span(
    tokenizer: PreTrainedTokenizerBase, full: str, chat: list[dict[str, str]], index: int, message_end: int
) -> tuple[int, int]:
    """Characters of ``full`` the model learns to write for assistant message ``index``: its content
    (after the header that the generation prompt renders) through the end-of-turn token."""
    if index == 0:
        raise ValueError("a trained assistant turn needs a context before it; the conversation starts with it")
    start = _prefix_length(tokenizer, full, chat[:index], generation_prompt=True)
    written = full[start:message_end]
    content = chat[index]["content"]
    # Search the end-of-turn token after the content, which may itself contain special-looking text;
    # some templates trim the content, hence the fallback to the whole turn.
    skip = len(content) if written.startswith(content) else 0
    position, token = _first_special_token(tokenizer, written[skip:])
    return start, start + skip + position + len(token)


# Per tokenizer, with its length when read: a token added later makes them be read again.
_SPECIAL_TOKENS: WeakKeyDictionary[PreTrainedTokenizerBase, tuple[int, tuple[str, ...]]] = WeakKeyDictionary()


def _special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    """The tokenizer's special added tokens. Kept, because reading them copies every added token out of the
    Rust tokenizer (16 ms with the shop's 7,000 single-token terms) and encoding asks once per trained turn:
    that was 85% of encoding an SFT training set (docs/performance.md#encoding-the-training-data)."""
    size = len(tokenizer)
    kept = _SPECIAL_TOKENS.get(tokenizer)
    if kept is None or kept[0] != size:
        specials = tuple(token.content for token in tokenizer.added_tokens_decoder.values() if token.special)
        kept = _SPECIAL_TOKENS[tokenizer] = (size, specials)
    return kept[1]


def _first_special_token(tokenizer: PreTrainedTokenizerBase, text: str) -> tuple[int, str]:
    found = [(text.find(token), -len(token), token) for token in _special_tokens(tokenizer) if token in text]
    if not found:
        raise UserError(
            f"the chat template of {tokenizer.name_or_path or 'this model'} does not close assistant turns with a "
            "special token; eef needs one to end an agent's turn"
        )
    position, _, token = min(found)
    return position, token
