"""The escapers, the redactor and the bounded reader: any text in, nothing unescaped out."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from cloudrun_mesh import text

MD = MarkdownIt("gfm-like")  # CommonMark plus GFM tables and strikethrough, with raw HTML on


def _inline_tokens(source: str) -> list:
    tokens = MD.parse(source)
    return [child for tok in tokens if tok.children for child in tok.children]


@settings(max_examples=300, deadline=None)
@given(st.text())
@example("[x](http://e.com) <img src=x onerror=alert(1)> *a* `c` ~~s~~ https://www.example.com &amp; # h")
@example("a\n# heading\n- item")
def test_markdown_text_renders_as_plain_text_whatever_it_holds(value):
    rendered = _inline_tokens(text.markdown(value))
    kinds = {t.type for t in rendered}
    # no link, image, emphasis, code, HTML or strikethrough: only text and soft breaks' absence
    assert kinds <= {"text"}, (value, kinds)
    assert "\n" not in text.markdown(value)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_a_code_span_shows_its_value_verbatim(value):
    rendered = _inline_tokens(text.code_span(value))
    if not text.terminal(value):
        return
    assert [t.type for t in rendered] == ["code_inline"], value
    assert rendered[0].content == text.terminal(value)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_a_code_span_in_a_table_cell_stays_in_its_cell(value):
    table = f"| a | b |\n| --- | --- |\n| {text.code_span(value, in_table=True)} | x |\n"
    cells = [t for t in MD.parse(table) if t.type == "td_open"]
    assert len(cells) == 2, value


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_terminal_text_has_no_control_character_and_no_workflow_command(value):
    out = text.terminal(value)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", out)
    assert not out.lstrip().startswith("::") and "##[" not in out and out.isprintable()


def test_terminal_shows_what_it_neutralised():
    assert text.terminal("a\nb\x1b[31m") == "a\\nb\\x1b[31m"
    assert text.terminal("::error title=x::y") == "\\x3a:error title=x::y"
    assert text.terminal("  ::warning::x") == "  \\x3a:warning::x"
    assert text.terminal("a ##[error]b \u202e") == "a ##\\x5berror]b \\u202e"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_mermaid_labels_hold_only_safe_characters_and_entity_codes(value):
    out = text.mermaid_label(value)
    assert re.fullmatch(r"(?:[A-Za-z0-9 _.,:/=@+-]|#[0-9]+;)*", out)
    decoded = re.sub(r"#([0-9]+);", lambda m: chr(int(m.group(1))), out)
    assert decoded == value


def test_shell_commands_quote_each_argument():
    import shlex

    args = ["gcloud", "logging", "read", 'resource.type="x" $(rm -rf /)', "--project=p;q"]
    assert shlex.split(text.shell_command(args)) == args


SECRET = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.payload-part.signature_part_0123456789"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.integers(0, len(SECRET) - 8), st.integers(8, len(SECRET)), st.text(max_size=40))
def test_no_run_of_eight_secret_characters_survives_redaction(before, start, length, after):
    piece = SECRET[start:start + length]
    out = text.redact(before + piece + after, [SECRET])
    windows = {SECRET[i:i + 8] for i in range(len(SECRET) - 7)}
    assert not any(out[i:i + 8] in windows for i in range(len(out) - 7))


def test_redaction_keeps_unrelated_text_and_catches_split_secrets():
    split = SECRET[:30] + " " + SECRET[30:]
    assert text.redact(f"token={split}; ok", [SECRET]) == "token=[redacted]; ok"  # the space is skipped
    assert text.redact("nothing here", [SECRET]) == "nothing here"
    assert text.redact("short abc", ["abc"]) == "short [redacted]"


def test_only_regular_files_are_read_and_each_is_bounded(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(text.InputFileError, match="not a regular file"):
        text.read_regular_file(fifo, 100)
    with pytest.raises(text.InputFileError, match="directory"):
        text.read_regular_file(tmp_path, 100)
    with pytest.raises(text.InputFileError, match="not a regular file"):
        text.read_regular_file("/dev/zero", 100)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(text.InputFileError, match="101 bytes"):
        text.read_regular_file(big, 100)
    big.write_bytes(b"x" * 100)
    assert text.read_regular_file(big, 100) == b"x" * 100


def test_deep_json_is_refused_before_the_parser_recurses(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000)
    with pytest.raises(text.InputFileError, match="brackets do not pair up"):
        text.load_json(deep, limit=1 << 20, max_depth=64)
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(text.InputFileError, match="nest 200,000 levels deep, more than the limit of 64"):
        text.load_json(deep, limit=1 << 20, max_depth=64)
    ok = tmp_path / "ok.json"
    ok.write_text('{"a": ["[", {"b": "}\\""}]}')
    assert text.json_shape_problem(ok.read_bytes(), 3, 10) is None
    assert "nest 3 levels" in text.json_shape_problem(ok.read_bytes(), 2, 10)
    assert text.load_json(ok, limit=100, max_depth=3) == {"a": ["[", {"b": '}"'}]}
