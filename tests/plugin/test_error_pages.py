"""HTTP errors a browser meets: Sharewise's own small HTML page (a main landmark, a heading,
the error's standard text), never the request's path or parameters; JSON clients keep
problem+json."""

from __future__ import annotations


def test_a_missing_page_is_a_page_with_a_main_landmark(client):
    resp = client.get("/no-such-page-Zoe-2014-03-09", headers={"Accept": "text/html"})
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert '<html lang="en-GB">' in html and "<main><h1>Not Found</h1>" in html
    assert "Zoe" not in html and "2014" not in html  # nothing of the request comes back


def test_a_wrong_method_keeps_its_allow_header(client):
    resp = client.delete("/healthz", headers={"Accept": "text/html"})
    assert resp.status_code == 405 and resp.mimetype == "text/html"
    assert "GET" in resp.headers["Allow"]
    assert "<h1>Method Not Allowed</h1>" in resp.get_data(as_text=True)


def test_json_clients_still_get_problems(client):
    resp = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    assert resp.get_json()["status"] == 404
