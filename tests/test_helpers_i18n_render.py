"""The Chinese edition against the real things: a self-check's hint from the reference broker,
a flow diagram with Chinese labels drawn by headless Chromium, and a matplotlib chart with a
Chinese title, both without missing glyphs (no boxes where characters should be).

The glyph checks can fail: without a CJK font, Chromium draws every missing character as the
same empty box (the glyph of U+E000, which no font draws), and matplotlib warns "Glyph ...
missing from font(s)", which these tests turn into a failure. Fonts: `make test` runs
scripts/ensure_fonts.sh (Debian's fonts-wqy-microhei).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from diagram_checks import CHROMIUM, CHROMIUM_ARGS, measure, overflows, overlaps

from helpers import Broker, i18n
from helpers.checks import ch03, ch04
from helpers.flow.events import TraceEvent
from helpers.flow.lifecycle import ClientEvent
from helpers.flow.state import FlowState
from helpers.flow.topology import topology_from_api
from helpers.fonts import use_cjk_fallback
from helpers.view.seq_draw import SequenceView
from helpers.view.sequence import sequence_of, window
from helpers.view.svg import render_svg

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
A = "127.0.0.1:40001 -> 127.0.0.1:5672"
B = "127.0.0.1:40002 -> 127.0.0.1:5672"


@pytest.fixture
def zh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(i18n.ENV, "zh_CN")


# -- a check's hint, from the broker -----------------------------------------------------------


def test_a_check_hint_speaks_chinese_and_english_stays(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = "unit.i18n.no-such-queue"
    monkeypatch.setenv(i18n.ENV, "en")
    english = ch03.check_exercise(broker, None, queue=missing)
    assert repr(english) == (
        f"❌ There is no queue named {missing!r}: run the cell that fills it (start_over()) first."
    )
    monkeypatch.setenv(i18n.ENV, "zh_CN")
    chinese = ch03.check_exercise(broker, None, queue=missing)
    assert not chinese.passed
    assert repr(chinese) == (
        f"❌ 没有名为 {missing!r} 的队列：请先运行填充它的单元格（start_over()）。"
    )


def test_a_topology_hint_from_the_broker_speaks_chinese(broker: Broker, zh: None) -> None:
    result = ch04.check_exercise(broker, exchange="unit.i18n.no-such-exchange")
    assert repr(result).startswith("❌ 还没有名为 'unit.i18n.no-such-exchange' 的交换机")


# -- a diagram with Chinese labels, in Chromium --------------------------------------------------


def _chinese_picture() -> str:
    """A diagram of a topic exchange, two queues (one quorum), a producer and a consumer
    that has left: Chinese legend, totals, queue lines, program lines."""
    state = FlowState(prefix="ch04.")
    state.set_topology(
        topology_from_api(
            [{"name": "ch04.logs", "type": "topic"}],
            [{"name": "ch04.errors"}, {"name": "ch04.all", "type": "quorum"}],
            [
                {"source": "ch04.logs", "destination": "ch04.errors",
                 "destination_type": "queue", "routing_key": "*.error"},
                {"source": "ch04.logs", "destination": "ch04.all",
                 "destination_type": "queue", "routing_key": "#"},
            ],
            [],
            [],
        ),
        now=0,
    )
    state.add_client_events(
        [ClientEvent("connection.created", connection=A, name="ch04.producer"),
         ClientEvent("connection.created", connection=B, name="ch04.worker"),
         ClientEvent("consumer.created", connection=B, channel=1, queue="ch04.errors",
                     consumer_tag="ch04.errors-reader", prefetch=10, ack_required=True)],
        now=1,
    )
    for key, queues in (("kern.error", ("ch04.all", "ch04.errors")), ("kern.info", ("ch04.all",)),
                        ("nothing", ())):
        state.add_events(
            [TraceEvent("publish", "ch04.logs", (key,), queues, connection=A, channel=1)], now=1
        )
    state.add_events(
        [TraceEvent("deliver", "", ("kern.error",), queue="ch04.errors", connection=B, channel=1)],
        now=1,
    )
    state.add_client_events([ClientEvent("connection.closed", connection=B)], now=2)
    return render_svg(state, now=3, animate=False)


@pytest.fixture
def page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1000, "height": 700})
        finally:
            browser.close()


GLYPHS = """(chars) => {
    const out = [];
    for (const ch of chars) {
        const c = document.createElement('canvas');
        c.width = 40; c.height = 40;
        const g = c.getContext('2d');
        g.fillStyle = '#fff'; g.fillRect(0, 0, 40, 40);
        g.fillStyle = '#000';
        g.font = '28px ' + FAMILY;
        g.fillText(ch, 4, 32);
        out.push(c.toDataURL());
    }
    return out;
}"""


def test_a_chinese_diagram_draws_every_character_and_nothing_overlaps(
    page, zh: None  # type: ignore[no-untyped-def]
) -> None:
    html = _chinese_picture()
    assert "已发布：发送到交换机的消息" in html  # the legend
    assert "已发布 3 · 已路由 3 · 无法路由 1" in html  # the totals
    assert "WenQuanYi Micro Hei" in html and "Microsoft YaHei" in html  # the font stack
    found = measure(page, html)
    assert not overlaps(found), overlaps(found)
    assert not overflows(found), overflows(found)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("svg.flow-svg").screenshot(path=str(ARTIFACTS / "diagram-zh.png"))

    family = page.evaluate("() => getComputedStyle(document.querySelector('svg.flow-svg'))"
                           ".fontFamily")
    text = page.evaluate("() => document.querySelector('svg.flow-svg').textContent")
    cjk = sorted({ch for ch in text if "\u4e00" <= ch <= "\u9fff"})
    assert len(cjk) > 20, cjk
    pictures = page.evaluate(GLYPHS.replace("FAMILY", repr(family)), ["\ue000", *cjk])
    missing, drawn = pictures[0], pictures[1:]
    boxes = [ch for ch, picture in zip(cjk, drawn, strict=True) if picture == missing]
    assert not boxes, f"drawn as the missing-glyph box: {''.join(boxes)}"
    assert len(set(drawn)) == len(cjk)  # each character its own glyph


def _chinese_sequence() -> SequenceView:
    """publish, route, deliver, an ack the program recorded, a close: in Chinese."""
    state = FlowState(prefix="t.")
    state.add_client_events(
        [ClientEvent("connection.created", connection=A, name="t.producer"),
         ClientEvent("connection.created", connection=B, name="t.worker"),
         ClientEvent("consumer.created", connection=B, channel=1, queue="t.jobs",
                     consumer_tag="ctag1.abc", prefetch=1)],
        now=1.0,
    )
    state.add_events([TraceEvent("publish", "t.x", ("job",), ("t.jobs",), connection=A,
                                 channel=1, body=b"hi")], now=1.0)
    state.add_events([TraceEvent("deliver", "t.x", ("job",), queue="t.jobs", connection=B,
                                 channel=1, body=b"hi")], now=1.0)
    state.record("t.worker", "ack", "delivery tag 1")
    state.add_client_events([ClientEvent("connection.closed", connection=B)], now=1.0)
    steps, earlier = window(state.timeline, 0, None)
    return SequenceView(sequence_of(steps, state.clients.program,
                                    lambda c: state.connection_name(c) is not None,
                                    earlier=earlier, exists=state.queue_known))


def test_a_chinese_sequence_picture_draws_every_character(page, zh: None) -> None:  # type: ignore[no-untyped-def]
    view = _chinese_sequence()
    assert view.text.startswith("共 7 步的时序（实线：Broker 的 firehose")
    for label in ("连接已打开", "消费（手动确认，预取 1）", "发布 'job'", "路由", "投递",
                  "连接已关闭", "[程序记录]"):
        assert label in view.text, label
    page.set_content(f"<html><body style='margin:0;background:#fff'>{view.svg}</body></html>")
    page.locator("svg").first.screenshot(path=str(ARTIFACTS / "sequence-zh.png"))
    family = page.evaluate("() => getComputedStyle(document.querySelector('svg')).fontFamily")
    assert "WenQuanYi Micro Hei" in family
    text = page.evaluate("() => document.querySelector('svg').textContent")
    cjk = sorted({ch for ch in text if "\u4e00" <= ch <= "\u9fff"})
    pictures = page.evaluate(GLYPHS.replace("FAMILY", repr(family)), ["\ue000", *cjk])
    assert not [ch for ch, pic in zip(cjk, pictures[1:], strict=True) if pic == pictures[0]]


# -- a matplotlib chart with Chinese text ------------------------------------------------------


def _draw(title: str) -> list[str]:
    """Draw a chart with `title` and return matplotlib's missing-glyph warnings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.plot([0, 1, 2], [3, 1, 2], label="已确认")
        ax.set_title(title)
        ax.set_xlabel("从开始起的秒数")
        ax.legend()
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_a_chart_with_chinese_text_has_every_glyph() -> None:
    import matplotlib

    before = matplotlib.rcParams["font.family"]
    try:
        matplotlib.rcParams["font.family"] = ["DejaVu Sans"]
        assert _draw("领导者所在节点死亡前后的吞吐量"), "DejaVu Sans alone should miss CJK glyphs"
        families = use_cjk_fallback()
        assert families, "no CJK font for matplotlib: run scripts/ensure_fonts.sh"
        assert _draw("领导者所在节点死亡前后的吞吐量 (orders / s)") == []
    finally:
        matplotlib.rcParams["font.family"] = before


def test_nbval_runs_a_notebook_in_its_directory_so_the_marker_chooses_chinese(
    tmp_path: Path,
) -> None:
    """nbval starts the kernel in the notebook's directory (as Jupyter does), so the
    `.tutorial-language` beside notebooks/zh/*.ipynb makes their saved helper outputs
    Chinese; a notebook whose saved output is Chinese passes there and fails elsewhere."""
    import subprocess
    import sys

    import nbformat

    cell = nbformat.v4.new_code_cell("from helpers.i18n import _\nprint(_('no queue'))")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="没有队列\n")]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    for where, marker in (("zh", "zh_CN\n"), ("en", None)):
        (tmp_path / where).mkdir()
        nbformat.write(notebook, tmp_path / where / "check.ipynb")
        if marker:
            (tmp_path / where / i18n.MARKER).write_text(marker, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != i18n.ENV}
    runs = {
        where: subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
             "--nbval-current-env", str(tmp_path / where / "check.ipynb")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
        for where in ("zh", "en")
    }
    assert runs["zh"].returncode == 0, runs["zh"].stdout[-2000:]
    assert runs["en"].returncode != 0, runs["en"].stdout[-2000:]  # "no queue" there
