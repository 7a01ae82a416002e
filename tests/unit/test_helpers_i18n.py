"""The helpers speak Chinese in the Chinese edition and English everywhere else.

Language selection (environment, the notebook directory's `.tutorial-language`, English as the
fallback), the catalog's completeness (every wrapped message translated, nothing fuzzy or
obsolete, no placeholder a translation invents), the code's use of `_()` (never at import time,
never shadowed), and the visible words of the diagram, the sequence view and the error
sentences, in both languages. No broker: tests/test_helpers_i18n_render.py has the checks that need
one, and the pictures rendered in Chromium and matplotlib.
"""

from __future__ import annotations

import ast
import importlib.util
import string
import sys
from pathlib import Path

import pika.exceptions as pe
import polib
import pytest

from helpers import i18n
from helpers.error_index import entry
from helpers.errors import explain
from helpers.flow.state import FlowState
from helpers.i18n import _
from helpers.view import text_fit
from helpers.view.scene import picture_of
from helpers.view.text import caption

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "helpers"

_spec = importlib.util.spec_from_file_location(
    "helpers_messages", ROOT / "scripts" / "helpers_messages.py"
)
assert _spec and _spec.loader
helpers_messages = importlib.util.module_from_spec(_spec)
sys.modules["helpers_messages"] = helpers_messages  # dataclasses look their module up
_spec.loader.exec_module(helpers_messages)

ENGLISH_LEGEND = (
    "published: messages sent to an exchange · routed: copies placed in queues (one message "
    "in 3 queues counts 3) · unroutable: dropped by an exchange · delivered: handed to a "
    "consumer or basic_get"
)


@pytest.fixture
def zh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(i18n.ENV, "zh_CN")


@pytest.fixture
def en(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """English, whatever the directory the tests run from holds."""
    monkeypatch.delenv(i18n.ENV, raising=False)
    monkeypatch.chdir(tmp_path)


# -- choosing the language ---------------------------------------------------------------------


def test_english_without_environment_or_marker(en: None) -> None:
    assert i18n.language() == "en"
    assert _("no queue") == "no queue"


def test_the_environment_chooses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for value, expected in (("zh_CN", "zh_CN"), ("zh", "zh_CN"), ("zh-CN", "zh_CN"),
                            ("en", "en"), ("klingon", "en")):
        monkeypatch.setenv(i18n.ENV, value)
        assert i18n.language() == expected, value


def test_the_notebook_directory_chooses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """notebooks/zh/ holds `.tutorial-language`; a kernel starts in the notebook's directory."""
    monkeypatch.delenv(i18n.ENV, raising=False)
    (tmp_path / i18n.MARKER).write_text("zh_CN\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert i18n.language() == "zh_CN"
    assert _("no queue") == "没有队列"
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert i18n.language() == "en"  # read at every call, not once at import


def test_the_environment_overrides_the_marker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / i18n.MARKER).write_text("zh_CN", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(i18n.ENV, "en")
    assert i18n.language() == "en"


def test_placeholders_are_filled_after_translating(zh: None) -> None:
    assert _("{n} connections").format(n=3) == "3 个连接"
    assert _("a message no one wrapped stays English") == "a message no one wrapped stays English"


# -- the catalog ---------------------------------------------------------------------------------


def _fields(text: str) -> set[str]:
    try:
        return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}
    except ValueError:
        return set()


def test_every_wrapped_message_has_a_chinese_translation() -> None:
    """Fails when a wrapped message is new or changed (run scripts/helpers_messages.py and
    translate), or when the catalog keeps fuzzy or obsolete entries."""
    po = polib.pofile(str(helpers_messages.CATALOG))
    wanted = set(helpers_messages.extract())
    have = {e.msgid for e in po if not e.obsolete}
    missing = wanted - have
    assert not missing, f"not in helpers.po (run scripts/helpers_messages.py): {missing}"
    assert not have - wanted, f"in helpers.po but used nowhere: {have - wanted}"
    assert not po.untranslated_entries(), [e.msgid for e in po.untranslated_entries()]
    assert not po.fuzzy_entries(), [e.msgid for e in po.fuzzy_entries()]
    assert not po.obsolete_entries(), [e.msgid for e in po.obsolete_entries()]


def test_translations_use_only_the_placeholders_the_code_fills() -> None:
    """A translation may leave out an English plural's suffix ({s}), never invent a field."""
    for e in polib.pofile(str(helpers_messages.CATALOG)):
        assert _fields(e.msgstr) <= _fields(e.msgid), (e.msgid, e.msgstr)
        for value in ("x", 1):  # a text, or a number for a numeric spec ({size:,})
            values = {name: value for name in _fields(e.msgid)}
            try:
                e.msgid.format(**values)
            except (ValueError, TypeError):
                continue
            e.msgstr.format(**values)  # the translation takes what the English takes


def test_the_catalog_file_is_what_the_script_writes() -> None:
    assert helpers_messages.main(["--check"]) == 0


def test_a_changed_english_message_keeps_its_translation_marked_fuzzy() -> None:
    old = polib.POFile()
    old.append(polib.POEntry(msgid="The queue {queue!r} is empty.", msgstr="队列 {queue!r} 空。"))
    new = helpers_messages.merge(
        {"The queue {queue!r} is empty now.": helpers_messages.Message("x")}, old
    )
    (changed,) = list(new)
    assert changed.msgstr == "队列 {queue!r} 空。" and "fuzzy" in changed.flags
    assert changed.previous_msgid == "The queue {queue!r} is empty."


def _module_level_calls(tree: ast.Module) -> list[int]:
    lines = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_":
            lines.append(node.lineno)
        stack.extend(ast.iter_child_nodes(node))
    return lines


def test_no_message_is_translated_at_import_time() -> None:
    """The language can change after import (a test, a notebook in another directory):
    constants are marked with N_() and translated where they are used."""
    found = {
        str(p.relative_to(ROOT)): lines
        for p in HELPERS.rglob("*.py")
        if (lines := _module_level_calls(ast.parse(p.read_text(encoding="utf-8"))))
    }
    assert not found, found


def test_no_function_shadows_the_translation_function() -> None:
    """`for _ in range(...)` inside a function that also calls _() makes `_` local to the
    whole function: the call fails with UnboundLocalError or 'int is not callable'."""
    found = []
    for path in HELPERS.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        if "from helpers.i18n import" not in source:
            continue
        for fn in ast.walk(ast.parse(source)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            stack: list[ast.AST] = list(fn.body)
            while stack:
                node = stack.pop()
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                     ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                    continue
                stored = isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
                if stored and node.id == "_":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                stack.extend(ast.iter_child_nodes(node))
    assert not found, found


# -- what the learner reads ------------------------------------------------------------------


def test_the_diagram_legend_and_totals_speak_the_language(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state = FlowState(prefix="ch04.")
    totals = {"published": 3, "routed": 2, "unroutable": 1, "delivered": 2, "redelivered": 0}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(i18n.ENV, "en")
    assert picture_of(state, now=1).legend == (ENGLISH_LEGEND,)
    assert caption(totals) == (
        "published 3 · routed 2 · unroutable 1 · delivered 2 · redelivered 0"
    )
    monkeypatch.setenv(i18n.ENV, "zh_CN")
    (legend,) = picture_of(state, now=1).legend
    assert legend.startswith("已发布：发送到交换机的消息")
    assert "已路由" in legend and "无法路由" in legend and "已投递" in legend
    assert caption(totals) == "已发布 3 · 已路由 2 · 无法路由 1 · 已投递 2 · 重新投递 0"
    assert picture_of(state, now=1).empty.endswith("请声明一个交换机或队列")


class _EmptyManagement:
    def consumers(self, vhost: str) -> list:
        return []

    exchanges = bindings = queue_totals = consumers


class _EmptyBroker:
    vhost = "/"
    management = _EmptyManagement()


class _Method:
    def __init__(self, redelivered: bool) -> None:
        self.redelivered = redelivered


class _Channel:
    is_open = False

    def consume(self, queue: str, inactivity_timeout: float):  # type: ignore[no-untyped-def]
        while True:
            yield _Method(True), None, b"again"


def test_the_chapters_printed_lines_speak_the_language(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers.demo.ch00 import BrokerTable
    from helpers.demo.ch05 import deliveries

    def printed() -> list[str]:
        BrokerTable(_EmptyBroker(), "ch00.")()  # type: ignore[arg-type]
        list(deliveries(_Channel(), "ch05.work", limit=2))  # type: ignore[arg-type]
        return capsys.readouterr().out.splitlines()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(i18n.ENV, "en")
    assert printed() == [
        "(nothing named ch00.* on the broker)",
        "deliveries() stopped after 2 deliveries from ch05.work, 2 of them redelivered: a "
        "message keeps coming back. basic_nack and basic_reject put it back with requeue=True, "
        "their default; requeue=False drops it or dead-letters it.",
    ]
    monkeypatch.setenv(i18n.ENV, "zh_CN")
    nothing, stopped = printed()
    assert nothing == "（Broker 上没有名为 ch00.* 的对象）"
    assert stopped.startswith("deliveries() 从 ch05.work 收到 2 次投递后停了下来")
    assert _("(default)") == "（默认交换机）"
    assert _("{n} unnamed programs").format(n=3) == "3 个未命名程序"
    assert _("RabbitMQ is up after {seconds:.1f} s.").format(seconds=2.345) == (
        "RabbitMQ 在 2.3 秒后启动完毕。"
    )


def test_error_sentences_speak_the_language(monkeypatch: pytest.MonkeyPatch) -> None:
    error = pe.ChannelClosedByBroker(404, "NOT_FOUND - no exchange 'ch04.nope' in vhost '/'")
    monkeypatch.setenv(i18n.ENV, "en")
    english = explain(error)
    assert english == (
        "The exchange or queue does not exist (no exchange 'ch04.nope' in vhost '/'), and the "
        "broker closed the channel: declare it first (or check the spelling of its name), then "
        "use a new channel. (chapter 04)"
    )
    monkeypatch.setenv(i18n.ENV, "zh_CN")
    chinese = explain(error)
    assert chinese == (
        "这个交换机或队列不存在（no exchange 'ch04.nope' in vhost '/'），Broker 关闭了信道："
        "先声明它（或检查名字的拼写），然后使用一个新信道。（第 04 章）"
    )
    assert entry("404-not-found").headline() == "这个交换机或队列不存在"


def test_the_english_error_index_is_unchanged_by_the_catalog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/errors.md is written from the English fields, whatever the language."""
    monkeypatch.setenv(i18n.ENV, "zh_CN")
    assert entry("404-not-found").fix == (
        "declare it first (or check the spelling of its name), then use a new channel"
    )


# -- text widths and fonts -------------------------------------------------------------------


def test_cjk_characters_measure_one_em() -> None:
    assert text_fit.text_width("交换机", 10) == pytest.approx(30)
    assert text_fit.text_width("（默认）：", 10) == pytest.approx(50)  # full-width punctuation
    latin = text_fit.text_width("queue", 10)
    assert text_fit.text_width("queue 队列", 10) == pytest.approx(latin + 3.18 + 20, abs=0.01)


def test_a_long_chinese_label_wraps_between_characters_instead_of_being_cut() -> None:
    label = "它的连接都已关闭；它的计数会保留，直到流程图被重置"
    fitted = text_fit.fit(label, width=120, size=10, max_lines=3)
    assert not fitted.cut, fitted
    assert "".join(fitted.lines) == label
    assert all(text_fit.text_width(line, 10) <= 120 for line in fitted.lines)
    legend = "已发布：发送到交换机的消息 · 已路由：放进队列的副本（一条消息进了 3 个队列计为 3）"
    lines = text_fit.fit(legend, width=160, size=10, max_lines=4).lines
    assert len(lines) > 1 and all(line in legend for line in lines), lines  # spaces kept
    assert not any(line.startswith(("：", "）", "，")) for line in lines), lines
    mixed = text_fit.fit("消费者 ctag1.4f3a 已结束", width=80, size=10, max_lines=3)
    assert "ctag1.4f3a" in " ".join(mixed.lines)  # a Latin word inside Chinese stays whole


def test_english_fitting_is_unchanged() -> None:
    """Outputs of the fitting before CJK line breaks existed (the English pictures' layout
    must not move)."""
    cases = {
        ("consumer ctag1.4f3a9b2c on ch03.tasks", 90, 2): (("consumer", "ctag1.4f3a…asks"), True),
        ("one two three four five six", 60, 4): (("one two", "three four", "five six"), False),
        ("amq.gen-JzTY20BRgKO-HjmUJj0wLg", 100, 2): (("amq.gen-Jz…j0wLg",), True),
        ("ch04.logs → ch04.errors [kern.*]", 70, 3): (
            ("ch04.logs →", "ch04.errors", "[kern.*]"),
            False,
        ),
    }
    for (text, width, max_lines), (lines, cut) in cases.items():
        fitted = text_fit.fit(text, width, 10, max_lines=max_lines)
        assert (fitted.lines, fitted.cut) == (lines, cut), text


def test_the_svg_font_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(i18n.ENV, "en")
    assert text_fit.font_family() == "'DejaVu Sans', Verdana, Arial, sans-serif"
    monkeypatch.setenv(i18n.ENV, "zh_CN")
    stack = text_fit.font_family()
    assert stack.startswith("'DejaVu Sans',")
    for family in ("Noto Sans CJK SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei"):
        assert family in stack  # Linux, macOS, Windows
    assert stack.endswith("sans-serif")
