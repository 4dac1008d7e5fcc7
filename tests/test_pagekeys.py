"""Page keys: when two URLs are the same page."""

import pytest

from dibs.pagekeys import MAX_KEY_LENGTH, page_key
from dibs.settings import DEFAULT_TRACKING_PARAMS


@pytest.mark.parametrize(
    "raw, key",
    [
        # The fragment, the order of parameters and tracking parameters do not matter.
        (
            "https://ops.example.com/booking/1#notes",
            "https://ops.example.com/booking/1",
        ),
        ("https://ops.example.com/b?z=1&a=2", "https://ops.example.com/b?a=2&z=1"),
        ("https://ops.example.com/b?a=2&a=1", "https://ops.example.com/b?a=1&a=2"),
        (
            "https://ops.example.com/b?utm_source=x&utm_medium=y",
            "https://ops.example.com/b",
        ),
        (
            "https://ops.example.com/b?id=7&fbclid=abc&gclid=d",
            "https://ops.example.com/b?id=7",
        ),
        # Scheme and host are case-insensitive; default ports and user info go.
        ("HTTPS://Ops.Example.COM/Booking", "https://ops.example.com/Booking"),
        ("https://ops.example.com:443/b", "https://ops.example.com/b"),
        ("http://ops.example.com:80/b", "http://ops.example.com/b"),
        ("http://ops.example.com:8080/b", "http://ops.example.com:8080/b"),
        ("https://agent:secret@ops.example.com/b", "https://ops.example.com/b"),
        ("http://[::1]:3000/b", "http://[::1]:3000/b"),
        # An empty path is the root; blank values stay, encoded.
        ("https://ops.example.com", "https://ops.example.com/"),
        (
            "https://ops.example.com/b?flag&q=a b",
            "https://ops.example.com/b?flag=&q=a%20b",
        ),
        ("https://ops.example.com/b?q=%26x", "https://ops.example.com/b?q=%26x"),
        # The path keeps its case and its trailing slash: servers tell them apart.
        ("https://ops.example.com/b/", "https://ops.example.com/b/"),
        # Anything that is not an http(s) URL is its own key.
        ("booking:309208537", "booking:309208537"),
        ("  booking:1  ", "booking:1"),
        ("refund form #3", "refund form #3"),
        ("ftp://files.example.com/x#y", "ftp://files.example.com/x#y"),
        ("https:///no-host", "https:///no-host"),
        ("http://bad-port:99999/x", "http://bad-port:99999/x"),
    ],
)
def test_page_keys(raw, key):
    assert page_key(raw, DEFAULT_TRACKING_PARAMS) == key


def test_configured_tracking_parameters_are_ignored():
    url = "https://ops.example.com/b?id=1&campaign=spring"

    assert page_key(url, ["campaign"]) == "https://ops.example.com/b?id=1"
    assert page_key(url) == "https://ops.example.com/b?campaign=spring&id=1"


def test_a_url_with_a_very_long_key_is_shortened_the_same_way_every_time():
    url = "https://ops.example.com/search?q=" + "x" * 1500
    other = url + "y"

    key = page_key(url)

    assert len(key) == MAX_KEY_LENGTH
    assert key.startswith("https://ops.example.com/search?q=xxx")
    assert page_key(url + "&utm_source=mail#frag") == key
    assert page_key(other) != key
    assert len(page_key(other)) == MAX_KEY_LENGTH
