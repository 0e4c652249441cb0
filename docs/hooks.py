"""mkdocs hooks: the site keeps the repository's layout, and headings get GitHub's anchors.

Every page sits at its path in the repository (README.md is the home page, docs/policies.md is
docs/policies/, BENCHMARKS.md and dexvision/datasets/README.md are pages too), so a relative link
written for GitHub works unchanged in the site, and `mkdocs build --strict` checks it.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
# Pages from outside docs/, as paths in the repository (globs allowed), with the images they show.
OUTSIDE_DOCS = ("README.md", "BENCHMARKS.md", "dexvision/datasets/README.md", "reports/*.md",
                "reports/*_files/*.png")


def github_slug(text: str, separator: str = "-") -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def on_config(config):
    config.mdx_configs.setdefault("toc", {})["slugify"] = github_slug
    return config


def on_files(files: Files, config) -> Files:
    docs = Path(config.docs_dir).resolve()
    laid_out = []
    for f in files:
        src = Path(f.abs_src_path).resolve() if f.abs_src_path else None
        if src is None or not src.is_relative_to(docs):
            laid_out.append(f)  # the theme's own files
        elif src.suffix != ".py":
            laid_out.append(File(f"docs/{f.src_uri}", str(ROOT), config.site_dir, config.use_directory_urls))
    for pattern in OUTSIDE_DOCS:
        for path in sorted(ROOT.glob(pattern)):
            laid_out.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config.site_dir,
                                 config.use_directory_urls))
    return Files(laid_out)
