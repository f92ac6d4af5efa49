from __future__ import annotations

import logging

from api.logs import DropQueryStrings


def test_access_log_keeps_the_path_but_not_the_query_string() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/lookup?q=Wang%20Jianguo", "1.1", 200),
        None,
    )
    assert DropQueryStrings().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /api/v1/lookup HTTP/1.1" 200'


def test_other_records_pass_untouched() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", ("a?b",), None)
    assert DropQueryStrings().filter(record) and record.getMessage() == "plain a?b"


def test_access_log_hides_calendar_feed_tokens() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/calendar/s3cr3t-t0ken.ics", "1.1", 200),
        None,
    )
    assert DropQueryStrings().filter(record)
    assert "s3cr3t" not in record.getMessage() and "/calendar/***.ics" in record.getMessage()
