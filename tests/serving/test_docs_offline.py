"""/docs and /redoc work without internet: every asset comes from this server."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client: TestClient, page: str) -> None:
    html = client.get(page).text
    external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", html)
    assert external == []
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+)""", html) + re.findall(
        r"""url: ['"](/[^'"]+)""", html
    )
    assert any(a.endswith(".js") for a in assets), html
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
    assert "https://cdn" not in html
    assert "fonts.googleapis" not in html
