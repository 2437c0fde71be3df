"""page_check.py: what tests/test_report.py and tests/test_sweep_report.py share: the command
line, the failure they stop at, a metrics.jsonl reader, a page reader, and an HTML parser base
that keeps the stack of open elements (void elements, self-closing tags, optional end tags) and
refuses duplicate ids, so each test's parser only says what it collects (start, end, text)."""

import json
import os
import sys
from html.parser import HTMLParser


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def main(argv, usage, page_file, check_dir):
    """The command line of a checker: argv[1] is a directory holding page_file, and
    check_dir(directory, page_path) checks the page, returning the line printed when it passes.
    Returns the exit status: 0 passed, 1 failed (the reason printed), 2 usage."""
    if len(argv) != 2:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    path = os.path.join(argv[1], page_file)
    try:
        passed = check_dir(argv[1], path)
    except Failure as e:
        print(f"FAIL: {path}: {e}")
        return 1
    except (OSError, ValueError) as e:
        print(f"FAIL: {e}")
        return 1
    print(passed)
    return 0


def read_jsonl(path, missing_ok=False):
    """The rows of a JSON-lines file; [] for a file that is not there when missing_ok."""
    rows = []
    if missing_ok and not os.path.isfile(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise Failure(f"{path}:{n}: not JSON: {e}")
    return rows


def read_page(path, parser):
    """Feeds the HTML file at path to parser (an Elements) and returns the parser."""
    check(os.path.isfile(path), f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        parser.feed(f.read())
    parser.close()
    return parser


class Elements(HTMLParser):
    """An HTML parser with the stack of open elements, (tag, attrs) each, in self.stack and
    every id's attributes in self.ids. Subclasses define start(tag, attrs, classes), end(tag)
    and text(data); start runs before the element is pushed, end after it is popped."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.ids = {}

    def start(self, tag, attrs, classes):
        pass

    def end(self, tag):
        pass

    def text(self, data):
        pass

    def handle_starttag(self, tag, attr_list):
        attrs = dict(attr_list)
        if "id" in attrs:
            check(attrs["id"] not in self.ids, f"duplicate id '{attrs['id']}'")
            self.ids[attrs["id"]] = attrs
        self.start(tag, attrs, (attrs.get("class") or "").split())
        if tag not in self.VOID:
            self.stack.append((tag, attrs))

    def handle_startendtag(self, tag, attr_list):
        self.handle_starttag(tag, attr_list)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        # Pop to the matching element (this also tolerates optional end tags).
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        self.end(tag)

    def handle_data(self, data):
        self.text(data)
