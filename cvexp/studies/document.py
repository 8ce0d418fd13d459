"""One small document model, rendered as Markdown and as a self-contained HTML page with the same
content (no template engine, no network: the HTML carries its CSS, and its images as data URIs).

    doc = Document("Course study")
    doc.add(Heading(2, "Q1"), Para("Stable **softmax**, see `theory.json`"), Table(["a", "b"], [["1", "2"]]))
    doc.markdown(), doc.html(base=study_dir)

Inline markup in text and table cells: `code`, **bold**, [text](relative/path). Image and link
paths are relative to the report's folder.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Para:
    text: str


@dataclass
class Note:
    text: str
    kind: str = "warn"  # warn | info
    label: str = ""     # default: "Not available" (warn), "Note" (info)

    @property
    def heading(self) -> str:
        return self.label or ("Note" if self.kind == "info" else "Not available")


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    align: list[str] | None = None  # per column: "l" | "r"
    caption: str = ""


@dataclass
class Image:
    src: str
    alt: str
    caption: str = ""


@dataclass
class Gallery:
    images: list[Image]
    wide: bool = False  # wide pictures (learning curves, panels): one per row


@dataclass
class Code:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(b for b in blocks if b is not None)

    # ------------------------------------------------------------------ Markdown
    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            out += _md(b) + [""]
        return "\n".join(out).rstrip() + "\n"

    # ------------------------------------------------------------------ HTML
    def html(self, base: Path | None = None, embed: bool = True) -> str:
        """The page; with `embed`, images are data URIs (read from `base`/src), else relative links."""
        toc = [b for b in self.blocks if isinstance(b, Heading) and b.level == 2 and b.anchor]
        body = []
        for b in self.blocks:
            body.append(_html(b, base, embed))
        nav = ""
        if toc:
            nav = ("<nav class='toc'><strong>Contents</strong><ol>"
                   + "".join(f"<li><a href='#{h.anchor}'>{inline_html(h.text)}</a></li>" for h in toc)
                   + "</ol></nav>")
        return (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
                f"<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
                f"<h1>{inline_html(self.title)}</h1>\n{nav}\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


# ------------------------------------------------------------------------------------ inline
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
SAFE_SCHEMES = ("http", "https", "mailto")  # a link with another scheme (javascript:, data:) stays text


def inline_html(text: str) -> str:
    """`code`, **bold** and [text](href) to HTML; everything else escaped."""
    parts = _CODE.split(str(text))
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        links: list[str] = []

        def keep(m: re.Match) -> str:
            href = m.group(2)
            scheme = re.match(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):", href)
            if scheme and scheme.group(1).lower() not in SAFE_SCHEMES:  # javascript:, data:, ...: text only
                links.append(html.escape(m.group(1)))
            else:
                links.append(f"<a href='{html.escape(href, quote=True)}'>{html.escape(m.group(1))}</a>")
            return f"\x00{len(links) - 1}\x00"

        s = _LINK.sub(keep, part)
        s = html.escape(s)
        s = _BOLD.sub(r"<strong>\1</strong>", s)
        s = re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], s)
        out.append(s)
    return "".join(out)


def md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def links_of(text: str) -> list[str]:
    return [m.group(2) for m in _LINK.finditer(_CODE.sub("", str(text)))]


# ------------------------------------------------------------------------------------ blocks
def _md(b) -> list[str]:
    if isinstance(b, Heading):
        return ["#" * b.level + " " + b.text]
    if isinstance(b, Para):
        return [b.text]
    if isinstance(b, Note):
        return [f"> **{b.heading}:** {b.text}"]
    if isinstance(b, Table):
        align = b.align or ["l"] * len(b.columns)
        out = ([f"*{b.caption}*", ""] if b.caption else [])
        out.append("| " + " | ".join(md_cell(c) for c in b.columns) + " |")
        out.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
        out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in b.rows]
        return out
    if isinstance(b, Image):
        return [f"![{b.alt}]({b.src})"] + ([f"*{b.caption}*"] if b.caption else [])
    if isinstance(b, Gallery):
        out = []
        for im in b.images:
            out += _md(im) + [""]
        return out[:-1]
    if isinstance(b, Code):
        return ["```", b.text.rstrip("\n"), "```"]
    if isinstance(b, Bullets):
        return [f"- {item}" for item in b.items]
    raise TypeError(f"unknown block {b!r}")


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, without decoding it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _img_html(im: Image, base: Path | None, embed: bool) -> str:
    src = im.src
    if embed and base is not None and (base / im.src).is_file():
        src = data_uri(base / im.src)
    cap = f"<figcaption>{inline_html(im.caption)}</figcaption>" if im.caption else ""
    return (f"<figure><img src='{html.escape(src, quote=True)}' alt='{html.escape(im.alt, quote=True)}'>"
            f"{cap}</figure>")


def _html(b, base: Path | None, embed: bool) -> str:
    if isinstance(b, Heading):
        anchor = f" id='{html.escape(b.anchor, quote=True)}'" if b.anchor else ""
        return f"<h{b.level}{anchor}>{inline_html(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        return f"<p>{inline_html(b.text)}</p>"
    if isinstance(b, Note):
        return f"<p class='note {b.kind}'><strong>{html.escape(b.heading)}:</strong> {inline_html(b.text)}</p>"
    if isinstance(b, Table):
        align = b.align or ["l"] * len(b.columns)
        cls = lambda a: " class='num'" if a == "r" else ""  # noqa: E731
        head = "".join(f"<th{cls(a)}>{inline_html(c)}</th>" for c, a in zip(b.columns, align))
        rows = "".join("<tr>" + "".join(f"<td{cls(a)}>{inline_html(c)}</td>" for c, a in zip(row, align)) + "</tr>"
                       for row in b.rows)
        cap = f"<caption>{inline_html(b.caption)}</caption>" if b.caption else ""
        return f"<div class='table'><table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    if isinstance(b, Image):
        return _img_html(b, base, embed)
    if isinstance(b, Gallery):
        cls = "gallery wide" if b.wide else "gallery"
        return f"<div class='{cls}'>" + "".join(_img_html(im, base, embed) for im in b.images) + "</div>"
    if isinstance(b, Code):
        return f"<pre><code>{html.escape(b.text)}</code></pre>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in b.items) + "</ul>"
    raise TypeError(f"unknown block {b!r}")


CSS = """
:root { --fg: #1d232b; --muted: #5b6570; --line: #d8dde3; --bg-alt: #f5f7f9; --accent: #1f5f99; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.9em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.45em; margin-top: 1.8em; padding-bottom: 0.2em; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.15em; margin-top: 1.4em; }
h4 { font-size: 1em; margin-top: 1.2em; color: var(--muted); }
a { color: var(--accent); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em;
       background: var(--bg-alt); padding: 0 3px; border-radius: 3px; }
pre { background: var(--bg-alt); border: 1px solid var(--line); padding: 10px 12px; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; }
pre code { background: none; padding: 0; }
.table { overflow-x: auto; margin: 0.6em 0 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
caption { text-align: left; color: var(--muted); padding-bottom: 4px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; }
th { background: var(--bg-alt); text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 0.6em 0 1.2em; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.88em; margin-top: 3px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 14px;
           align-items: start; margin: 0.6em 0 1.2em; }
.gallery.wide { grid-template-columns: 1fr; }
.gallery figure { margin: 0; }
.note { padding: 8px 12px; border-left: 4px solid #c9302c; background: #fdf1f0; }
.note.info { border-left-color: var(--accent); background: #eef4fa; }
.toc { background: var(--bg-alt); border: 1px solid var(--line); padding: 8px 16px; display: inline-block; }
.toc ol { margin: 4px 0; padding-left: 22px; }
@media print {
  main { max-width: none; padding: 0; }
  h2 { page-break-after: avoid; }
  figure, table { page-break-inside: avoid; }
  .gallery { grid-template-columns: 1fr 1fr; }
  .gallery.wide { grid-template-columns: 1fr; }
  a { color: inherit; text-decoration: none; }
}
"""
