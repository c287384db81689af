#!/usr/bin/python3
# axon-test: one backend (what it checks does not depend on the event loop)
"""docs/guide.md and README.md stay true to the code: every code block
marked `<!-- example: PATH -->` is a verbatim excerpt of PATH, every example
program is listed, and the guide's table of contents points at its
headings."""

import glob
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402

SRC = os.environ.get("AXON_SRC") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
t = axtest.Tests("docs/guide.md and README.md")


def read(rel):
    with open(os.path.join(SRC, rel), encoding="utf-8") as f:
        return f.read()


def slug(heading):
    """GitHub's anchor for a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


@t.test
def marked_excerpts_match_their_source():
    guide = read("docs/guide.md")
    blocks = re.findall(r"<!-- example: (\S+) -->\n```c\n(.*?)```", guide, re.S)
    t.ok(len(blocks) >= 10, "only %d marked excerpts found" % len(blocks))
    for path, code in blocks:
        t.ok(os.path.exists(os.path.join(SRC, path)), "excerpt source %s does not exist" % path)
        t.ok(code in read(path), "this excerpt is not in %s any more:\n%s" % (path, code))


@t.test
def every_example_is_in_the_guide_and_the_readme():
    guide, readme = read("docs/guide.md"), read("README.md")
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SRC, "examples", "*.c")))
    t.ok(names, "no examples found under %s/examples" % SRC)
    for n in names:
        t.ok("examples/" + n in guide, "docs/guide.md does not mention examples/%s" % n)
        t.ok(n[:-2] in readme, "README.md does not mention %s" % n[:-2])


@t.test
def guide_contents_links_resolve():
    guide = read("docs/guide.md")
    anchors = {slug(h) for h in re.findall(r"^#{2,3} (.+)$", guide, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", guide)
    t.ok(links, "no table of contents")
    for link in links:
        t.ok(link in anchors, "#%s matches no heading" % link)


@t.test
def readme_links_to_the_guide():
    readme = read("README.md")
    t.ok("docs/guide.md" in readme, "README.md does not link docs/guide.md")


t.main()
