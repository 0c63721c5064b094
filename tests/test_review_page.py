"""The review page as rendered (``pages/review.py: render_page``), without a browser: what its script is given."""

from __future__ import annotations

import json
import re

from acoustic_env.csv_writer import RULE
from acoustic_env.pages.review import render_page


def test_the_pages_csv_export_is_given_the_one_csv_writers_rule_and_the_audit_data():
    """The browser's export of verdicts neutralises formula cells by the rule the Python writer applies
    (csv_writer.RULE): the page carries that rule, as JSON the script reads, beside the audit's data."""
    page = render_page({"suspects": [{"clip_id": "s<1>"}], "random": []})
    (rule,) = re.findall(r"const CSV_RULE = (.*);", page)
    assert json.loads(rule) == RULE and "__CSV_RULE__" not in page and "__AUDIT_DATA__" not in page
    assert '"clip_id": "s\\u003c1\\u003e"' in page
