import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.exchange import Message, Tool, ToolCall, ToolResult
from emulator.tokens import count_messages, count_text, split_tokens, truncate_to_tokens

SYSTEM = (
    "You are a professional English translation assistant. Translate user input from Chinese to English and "
    "from English to Chinese. Return only the translation result without any explanation."
)

# Latin, CJK, kana, hangul, digits, punctuation, emoji and assorted whitespace, in bulk.
MIXED = st.text(
    alphabet=st.sampled_from(list("abcXYZ éß012 ,.!?-_\n\t 你好世界こんにちは안녕😀👍🏽\u3000\u00a0"))
    | st.characters(),
    max_size=80,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("   \n\t", 0),
        ("hello", 1),
        ("hello world", 2),
        ("Hello, world!", 4),
        ("你好世界", 4),
        ("こんにちは", 5),
        ("안녕하세요", 5),
        ("2024", 2),
        ("2024-01-31", 6),
        ("gpt-4o", 4),
        ("internationalization", 2),
        ("snake_case", 3),
        ("👍", 1),
        ("café", 1),
        ("Привет мир", 2),
    ],
)
def test_count_text_examples(text: str, expected: int) -> None:
    assert count_text(text) == expected


def test_cjk_costs_more_per_character_than_latin() -> None:
    assert count_text("今天天气很好") == 6
    assert count_text("The weather is very nice today.") == 7


def test_single_user_message_matches_the_gateway() -> None:
    assert count_messages([Message("user", "Hello, please introduce yourself")]) == 10


def test_translation_prompt_is_near_the_gateway_count() -> None:
    tokens = count_messages([Message("system", SYSTEM), Message("user", "The weather is very nice today.")])
    assert abs(tokens - 38) <= 0.2 * 38


def test_count_messages_adds_tool_calls_results_parts_and_tools() -> None:
    base = count_messages([Message("user", "hi")])
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    with_call = count_messages([Message("user", "hi"), Message("assistant", tool_calls=[call])])
    assert with_call == base + 2 + 3 + count_text("get_weather") + count_text(call.arguments)
    result = Message("tool", tool_result=ToolResult("call_1", "get_weather", "sunny, 22 degrees"))
    assert count_messages([Message("user", "hi"), result]) == base + 2 + count_text("sunny, 22 degrees")
    image = Message("user", "hi", parts=[{"type": "image_url", "image_url": {"url": "data:..."}}])
    assert count_messages([image]) == base + 85
    document = Message("user", "hi", parts=[{"type": "input_file", "file_id": "file-1"}])
    assert count_messages([document]) == base + 256
    tool = Tool("get_weather", "Get the weather", {"type": "object", "properties": {"city": {"type": "string"}}})
    assert count_messages([Message("user", "hi")], [tool]) > base + count_text("get_weather Get the weather")


def test_split_tokens_attaches_whitespace_to_the_following_piece() -> None:
    assert split_tokens("Hello, world!") == ["Hello", ",", " world", "!"]
    assert split_tokens("  a\n\nb  ") == ["  a", "\n\nb  "]
    assert split_tokens("你好") == ["你", "好"]
    assert split_tokens("") == []
    assert split_tokens("  ") == ["  "]


def test_truncate_cuts_on_whole_tokens() -> None:
    assert truncate_to_tokens("Hello, world!", 3) == "Hello, world"
    assert truncate_to_tokens("Hello, world!", 1) == "Hello"
    assert truncate_to_tokens("Hello, world!", 0) == ""
    assert truncate_to_tokens("Hello, world!", 4) == "Hello, world!"
    assert truncate_to_tokens("你好世界", 2) == "你好"
    assert truncate_to_tokens("  ", 0) == "  "


@given(MIXED)
def test_split_tokens_round_trips_one_piece_per_token(text: str) -> None:
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    if text.strip() or not text:
        assert len(pieces) == count_text(text)
        assert all(count_text(piece) == 1 for piece in pieces)


@given(MIXED, st.integers(min_value=-2, max_value=40))
def test_truncate_invariants(text: str, limit: int) -> None:
    cut = truncate_to_tokens(text, limit)
    assert text.startswith(cut)
    assert count_text(cut) <= max(limit, 0)
    assert count_text(cut) == min(max(limit, 0), count_text(text))
    if count_text(text) <= limit:
        assert cut == text
    assert cut == "".join(split_tokens(text)[: max(limit, 0)]) or cut == text


@given(MIXED, MIXED)
def test_counts_are_subadditive(first: str, second: str) -> None:
    assert count_text(first + second) <= count_text(first) + count_text(second)
