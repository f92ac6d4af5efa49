from fastapi.testclient import TestClient


def test_me_requires_sign_in(client: TestClient) -> None:
    assert client.get("/api/v1/me").status_code == 401


def test_me_shows_the_signed_in_user(client: TestClient, headers_for) -> None:
    response = client.get("/api/v1/me", headers=headers_for("staff"))
    assert response.status_code == 200
    assert response.json()["role"] == "staff"
