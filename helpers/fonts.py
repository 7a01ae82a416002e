"""Chinese text in matplotlib charts without boxes.

matplotlib's default font, DejaVu Sans, has no CJK glyphs: a Chinese title or label draws
as empty boxes, with a "Glyph ... missing from font(s) DejaVu Sans" warning. Since
matplotlib 3.6 a text falls back glyph by glyph along `font.family`'s list, so the charts
keep DejaVu Sans first (Latin text looks as before) and name after it the CJK fonts that are
installed: WenQuanYi Micro Hei (Debian's fonts-wqy-microhei, which scripts/ensure_fonts.sh
installs), Noto Sans CJK SC, and the ones macOS and Windows ship. Only installed families
are named: a missing one makes matplotlib log "findfont: Font family ... not found", which
would show in a notebook's output.
"""

from __future__ import annotations

CJK_FAMILIES = (
    "WenQuanYi Micro Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "PingFang SC",
    "Hiragino Sans GB",
    "Microsoft YaHei",
    "SimHei",
)
FILE_MARKS = ("wqy-microhei", "notosanscjk", "notosanssc", "sourcehansans", "pingfang", "msyh")


def installed_cjk_families() -> list[str]:
    """The CJK families of CJK_FAMILIES that matplotlib finds on this machine, in order."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    if not names & set(CJK_FAMILIES):
        # matplotlib caches its list of fonts: one installed after the cache was written
        # (`make lab` runs ensure_fonts.sh after the first chart, say) is added by its file.
        for path in font_manager.findSystemFonts():
            if any(mark in path.lower() for mark in FILE_MARKS):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        names = {f.name for f in font_manager.fontManager.ttflist}
    return [family for family in CJK_FAMILIES if family in names]


def use_cjk_fallback() -> list[str]:
    """Make matplotlib fall back to an installed CJK font; returns the families it uses
    (empty when none is installed: scripts/ensure_fonts.sh says what to install)."""
    import matplotlib

    families = installed_cjk_families()
    if families:
        matplotlib.rcParams["font.family"] = ["DejaVu Sans", *families]
    return families
