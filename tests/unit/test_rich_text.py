"""The Resolve modal's long fields arrive as rich text: read back as plain text with the shape a
person gave them, nothing lost, nothing executable."""

from __future__ import annotations

from bot.listeners.rich_text import rich_text_to_text
from sandbox.block_kit import rich_text


def test_paragraphs_lists_quotes_code_and_mentions_keep_their_shape() -> None:
    value = {"type": "rich_text", "elements": [
        {"type": "rich_text_section", "elements": [
            {"type": "text", "text": "Cache served "}, {"type": "text", "text": "stale", "style": {"bold": True}},
            {"type": "text", "text": " prices, see "}, {"type": "link", "url": "https://wiki.test/pm", "text": "the PM"},
            {"type": "text", "text": " and "}, {"type": "user", "user_id": "U01CAROL"},
            {"type": "text", "text": " "}, {"type": "broadcast", "range": "channel"}, {"type": "emoji", "name": "fire"}]},
        {"type": "rich_text_list", "style": "ordered", "indent": 0, "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": "roll back"}]},
            {"type": "rich_text_section", "elements": [{"type": "text", "text": "flag it"}]}]},
        {"type": "rich_text_list", "style": "bullet", "indent": 1, "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": "nested"}]}]},
        {"type": "rich_text_quote", "elements": [{"type": "text", "text": "a quote\nover two lines"}]},
        {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": "SELECT 1;"}]},
        {"type": "mystery_block", "elements": []},
    ]}
    assert rich_text_to_text(value) == (
        "Cache served stale prices, see the PM (https://wiki.test/pm) and @U01CAROL @channel:fire:\n"
        "1. roll back\n2. flag it\n  • nested\n> a quote\n> over two lines\n```\nSELECT 1;\n```")


def test_anything_malformed_reads_as_empty_or_is_skipped() -> None:
    for value in (None, "text", 3, [], {"elements": "no"}, {"elements": [None, 4, {"type": "rich_text_section"}]}):
        assert rich_text_to_text(value) == ""
    assert rich_text_to_text({"elements": [{"type": "rich_text_list", "indent": -4, "style": "ordered", "offset": "x",
                                            "elements": [{"elements": [{"type": "text", "text": "x"}]}]}]}) == "1. x"


def test_long_text_comes_back_whole_without_control_characters() -> None:
    typed = "\n".join(f"line {n} " + "x" * 90 for n in range(60))  # 6,000 characters: past a plain input's 3,000
    assert rich_text_to_text(rich_text(typed)["rich_text_value"]) == typed
    assert rich_text_to_text(rich_text("a\x00b\x1b[31mc")["rich_text_value"]) == "ab[31mc"
