"""Accessibility checks for one page open in real Chromium (Playwright's sync API): axe-core
(WCAG 2.0-2.2 A and AA rules, and its best practices), and four checks axe cannot make: target
size (WCAG 2.5.8), a visible focus indicator (2.4.7), reflow at 390 CSS px (1.4.10) and a skip
link as the first stop of the keyboard (2.4.1). Each check returns the problems it found as
plain sentences; an empty list is a pass. docs/accessibility.md says what each one measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
MIN_TARGET = 24  # CSS px, WCAG 2.2 2.5.8 (AA)
PHONE_WIDTH = 390
# What the keyboard can reach, and what a pointer can press.
INTERACTIVE = (
    "a[href], button, input:not([type=hidden]), select, textarea, summary, "
    "[tabindex]:not([tabindex='-1'])"
)


def axe_script() -> Path | None:
    """axe.min.js as the axe-playwright-python package ships it (a dev dependency), or None."""
    try:
        import axe_playwright_python
    except ImportError:
        return None
    path = Path(axe_playwright_python.__file__).parent / "axe.min.js"
    return path if path.is_file() else None


def axe_run(page: Page, script: Path) -> dict[str, Any]:
    """axe-core's results on the page (violations, and what it leaves for a person to judge).
    Evaluated, not added as a <script> tag: the console's Content-Security-Policy allows no
    script, and the test keeps that policy in force, so a style it would block is blocked here
    too."""
    page.evaluate(script.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations', 'incomplete']})",
        AXE_TAGS,
    )
    return result


def short_text_contrast(page: Page, result: dict[str, Any]) -> list[str]:
    """Text axe cannot judge because it is too short (a severity badge's digit): its contrast
    from the computed colours, against the backgrounds behind it composited, must reach 4.5:1
    (3:1 for large text), as WCAG 1.4.3 asks of any text."""
    targets = [
        n["target"][0]
        for v in result["incomplete"]
        if v["id"] == "color-contrast"
        for n in v["nodes"]
        if "too short" in " ".join(c.get("message", "") for c in n.get("any", []))
    ]
    found: list[str] = page.evaluate(
        """targets => {
        const rgba = c => { const m = c.match(/[0-9.]+/g).map(Number);
                            return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
        const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3]));
        const lum = c => { const [r, g, b] = c.map(v => { v /= 255;
            return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        return targets.flatMap(sel => {
          const e = document.querySelector(sel); if (!e) return [];
          const layers = [];
          for (let a = e; a; a = a.parentElement) {
            const bg = rgba(getComputedStyle(a).backgroundColor);
            if (bg[3] > 0) layers.push(bg);
            if (bg[3] >= 1) break;
          }
          let bg = [255, 255, 255];
          for (const l of layers.reverse()) bg = over(l, bg);
          const s = getComputedStyle(e), fg = over(rgba(s.color), bg);
          const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
          const ratio = (hi + 0.05) / (lo + 0.05), size = parseFloat(s.fontSize);
          const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
          if (ratio >= (large ? 3 : 4.5)) return [];
          return [`"${e.innerText.trim()}" at ${sel} has contrast ${ratio.toFixed(2)}:1 `
                  + `(${s.color} on rgb(${bg.map(Math.round)}))`];
        });
        }""",
        targets,
    )
    return found


def describe(violations: list[dict[str, Any]]) -> list[str]:
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:4])
        + (f" and {len(v['nodes']) - 4} more" if len(v["nodes"]) > 4 else "")
        for v in violations
    ]


_VISIBLE = """
e => {
  const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'
    && !e.closest('[hidden], .skip-link');
}
"""


def small_targets(page: Page) -> list[str]:
    """Visible interactive elements smaller than 24 x 24 CSS px. The skip link is measured
    when it shows (on focus) by skip_link_problems."""
    found: list[str] = page.evaluate(
        f"""min => {{
        const visible = {_VISIBLE};
        return [...document.querySelectorAll("{INTERACTIVE}")].filter(visible).flatMap(e => {{
          const r = e.getBoundingClientRect();
          if (r.width >= min - 0.01 && r.height >= min - 0.01) return [];
          const name = (e.innerText || e.value || e.name || e.getAttribute('aria-label') || '');
          return [`${{e.tagName.toLowerCase()}} "${{name.trim().slice(0, 40)}}" is `
                  + `${{r.width.toFixed(1)}} x ${{r.height.toFixed(1)}} px`];
        }});
        }}""",
        MIN_TARGET,
    )
    return found


_RING = """
e => { const s = getComputedStyle(e);
  return {outline: s.outlineStyle === 'none' ? 'none'
                   : `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}`,
          width: parseFloat(s.outlineWidth) || 0, shadow: s.boxShadow}; }
"""


def focus_problems(page: Page, limit: int = 400) -> list[str]:
    """Tab through the page; each element the keyboard reaches must show an outline of at least
    2 px, or a box-shadow, that it does not show unfocused."""
    page.evaluate(
        f"""() => {{
        document.activeElement && document.activeElement.blur();
        const ring = {_RING};
        window.__unfocused = new Map();
        for (const e of document.querySelectorAll("{INTERACTIVE}, main"))
          window.__unfocused.set(e, ring(e));
        }}"""
    )
    start_at_top(page)
    problems: list[str] = []
    seen = 0
    for _ in range(limit):
        page.keyboard.press("Tab")
        state = page.evaluate(
            f"""() => {{
            const e = document.activeElement;
            if (!e || e === document.body) return null;
            if (e.dataset.a11ySeen) return 'again';
            e.dataset.a11ySeen = '1';
            const now = ({_RING})(e), before = window.__unfocused.get(e);
            const shown = (now.outline !== 'none' && now.width >= 2) || now.shadow !== 'none';
            const changed = !before || now.outline !== before.outline
                            || now.shadow !== before.shadow;
            return {{ok: shown && changed, what: e.tagName.toLowerCase() + ' "'
                     + (e.innerText || e.value || e.name || '').trim().slice(0, 40) + '"',
                     now: now, before: before || null}};
            }}"""
        )
        if state is None or state == "again":
            break
        seen += 1
        if not state["ok"]:
            problems.append(
                f"{state['what']} shows no focus indicator (focused {state['now']}, "
                f"unfocused {state['before']})"
            )
    if seen == 0:
        problems.append("the keyboard reaches nothing on the page")
    return problems


def start_at_top(page: Page) -> None:
    """Put the keyboard's starting point before everything, as on a fresh page without
    autofocus: focus a throwaway element at the top of <body>; the next Tab leaves it."""
    page.evaluate(
        """() => { const m = document.createElement('span'); m.tabIndex = -1;
        m.id = '__a11y_top'; document.body.prepend(m); m.focus(); }"""
    )


def skip_link_problems(page: Page) -> list[str]:
    """The first Tab reaches a visible 'Skip to main content' link; following it puts the
    keyboard in <main>, so the next Tab lands on main's first control, not the header's."""
    start_at_top(page)
    page.keyboard.press("Tab")
    page.evaluate("() => document.getElementById('__a11y_top').remove()")
    first = page.evaluate(
        """() => { const e = document.activeElement, r = e.getBoundingClientRect();
        return {tag: e.tagName.toLowerCase(), text: (e.innerText || '').trim(),
                href: e.getAttribute('href'), x: r.left, y: r.top, w: r.width, h: r.height,
                vw: innerWidth}; }"""
    )
    if first["tag"] != "a" or "skip to main content" not in first["text"].lower():
        return [f"the first Tab reaches {first['tag']} {first['text']!r}, not a skip link"]
    problems = []
    inside = first["x"] >= 0 and first["y"] >= 0 and first["x"] + first["w"] <= first["vw"]
    if not inside or first["w"] < MIN_TARGET or first["h"] < MIN_TARGET:
        problems.append(f"the focused skip link is not fully shown at 24 x 24 px or more: {first}")
    page.keyboard.press("Enter")
    in_main = page.evaluate(
        "() => !!document.activeElement.closest('main')"
        " && document.activeElement.closest('main').id === "
        f"{first['href'][1:]!r}"
    )
    if not in_main:
        problems.append(f"following the skip link ({first['href']}) does not move focus to main")
    controls_in_main = page.evaluate(
        "sel => document.querySelectorAll(`main :is(${sel})`).length", INTERACTIVE
    )
    page.keyboard.press("Tab")
    after = page.evaluate("() => !!document.activeElement.closest('main')")
    if controls_in_main and not after:
        problems.append("after the skip link, Tab goes back to the header, not into main")
    return problems


def sideways(page: Page, width: int = PHONE_WIDTH) -> list[str]:
    """Reflow: at `width` CSS px the page does not scroll sideways. Names what sticks out."""
    out: dict[str, Any] = page.evaluate(
        """w => ({scroll: document.documentElement.scrollWidth,
        wide: [...document.querySelectorAll('body *')].filter(e => {
            const r = e.getBoundingClientRect(); return r.right > w + 0.5 && r.width > 0; })
          .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > w + 0.5))
          .slice(0, 6).map(e => e.tagName.toLowerCase()
            + (e.className ? '.' + String(e.className).replace(/ /g, '.') : '')
            + ' right=' + Math.round(e.getBoundingClientRect().right))})""",
        width,
    )
    if out["scroll"] <= width:
        return []
    return [f"the page is {out['scroll']} px wide at {width} px: {', '.join(out['wide'])}"]
