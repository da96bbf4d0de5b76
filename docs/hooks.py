"""MkDocs hook: the home page is the README. Its links are written from the repository's
root (``docs/results.md``, ``docs/report.png``); on the site they are relative to docs/."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def on_page_markdown(markdown, page, **kwargs):
    if page.file.src_uri != "index.md":
        return markdown
    return re.sub(r"\]\(docs/", "](", README.read_text(encoding="utf-8"))
