"""Settings: read from WELFARE_* variables; the demo secret never serves real users."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from api.app import create_app
from welfare.settings import DEFAULT_SECRET_KEY, Settings, UnsafeSettingsError

GOOD_SECRET = "x" * 48


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WELFARE_* variable or .env file of the developer's leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("WELFARE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def make(**values) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_default_secret_is_refused_for_serving_naming_the_variable() -> None:
    settings = make(secret_key=DEFAULT_SECRET_KEY)
    with pytest.raises(UnsafeSettingsError, match="WELFARE_SECRET_KEY"):
        settings.ensure_safe_for_serving()


def test_settings_default_to_the_demo_secret() -> None:
    assert make().secret_key == DEFAULT_SECRET_KEY
    with pytest.raises(UnsafeSettingsError):
        make().ensure_safe_for_serving()


def test_short_secret_is_refused_for_serving() -> None:
    with pytest.raises(UnsafeSettingsError, match="WELFARE_SECRET_KEY must be at least 32"):
        make(secret_key="s" * 31).ensure_safe_for_serving()


def test_long_random_secret_is_accepted() -> None:
    make(secret_key=GOOD_SECRET).ensure_safe_for_serving()


def test_create_app_refuses_the_default_secret_unless_demo(tmp_path: Path) -> None:
    settings = make(database_url=f"sqlite:///{tmp_path / 'app.db'}")
    with pytest.raises(UnsafeSettingsError, match="WELFARE_SECRET_KEY"):
        create_app(settings)
    app = create_app(settings, demo=True)
    assert app.state.settings is settings
    app.state.engine.dispose()


def test_create_app_accepts_a_safe_secret(tmp_path: Path) -> None:
    settings = make(database_url=f"sqlite:///{tmp_path / 'app.db'}", secret_key=GOOD_SECRET)
    app = create_app(settings)
    app.state.engine.dispose()


def test_welfare_prefixed_environment_variables_are_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WELFARE_SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("WELFARE_DATABASE_URL", "postgresql://db.example/welfare")
    monkeypatch.setenv("WELFARE_PUBLIC_BASE_URL", "https://welfare.example.org/")
    monkeypatch.setenv("WELFARE_LOGIN_MAX_FAILURES_PER_ACCOUNT", "3")
    monkeypatch.setenv("WELFARE_SESSION_TTL_HOURS", "8")
    monkeypatch.setenv("WELFARE_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("WELFARE_TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("WELFARE_TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setenv("WELFARE_TWILIO_FROM_NUMBER", "+15005550006")
    monkeypatch.setenv("SECRET_KEY", "unprefixed-is-ignored")
    settings = make()
    assert settings.secret_key == GOOD_SECRET
    assert settings.database_url == "postgresql://db.example/welfare"
    assert settings.public_base_url == "https://welfare.example.org"
    assert settings.cookie_secure is True
    assert settings.login_max_failures_per_account == 3
    assert settings.session_ttl_hours == 8
    assert settings.media_dir == tmp_path / "media"
    assert settings.is_sqlite is False
    assert settings.worker_in_process is False
    assert settings.twilio_configured is True
    assert settings.channel_name == "twilio"
    settings.ensure_safe_for_serving()


def test_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"WELFARE_SECRET_KEY={GOOD_SECRET}\n")
    assert Settings().secret_key == GOOD_SECRET


def test_defaults_give_a_working_sqlite_demo_with_the_console_channel() -> None:
    settings = make()
    assert settings.is_sqlite
    assert settings.worker_in_process is True
    assert settings.channel_name == "console"
    assert settings.cookie_secure is False
    assert settings.login_max_failures_per_account == 5
    assert settings.login_max_failures_per_address == 20


def test_partial_twilio_credentials_fall_back_to_the_console_channel() -> None:
    settings = make(twilio_account_sid="AC123", twilio_auth_token="token")
    assert settings.twilio_configured is False
    assert settings.channel_name == "console"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WELFARE_SESSION_TTL_HOURS", "0"),
        ("WELFARE_LOGIN_MAX_FAILURES_PER_ACCOUNT", "0"),
        ("WELFARE_LOGIN_WINDOW_MINUTES", "not-a-number"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        make()
