"""Settings from HABITAT_* variables."""

from __future__ import annotations

import pytest

from habitat_http.config import Config, ConfigError


def test_defaults() -> None:
    config = Config.from_env({})
    assert config.db_url == "sqlite:///habitat.db"
    assert config.blocked_callsigns == {"N0CALL", "MYCALL", "CHANGEME"}
    assert config.trusted_proxies == 0
    assert config.max_body == 65536
    assert config.sqlite_synchronous == "FULL"


def test_every_variable() -> None:
    config = Config.from_env(
        {
            "HABITAT_DB": "sqlite:////var/lib/habitat/h.db",
            "HABITAT_BLOCKED_CALLSIGNS": " n0call , test1,, ",
            "HABITAT_TRUSTED_PROXIES": "2",
            "HABITAT_MAX_BODY": "1024",
            "HABITAT_SQLITE_SYNCHRONOUS": "normal",
            "HABITAT_DB_TIMEOUT": "0.5",
        }
    )
    assert config.db_url == "sqlite:////var/lib/habitat/h.db"
    assert config.blocked_callsigns == {"N0CALL", "TEST1"}
    assert config.trusted_proxies == 2
    assert config.max_body == 1024
    assert config.sqlite_synchronous == "NORMAL"
    assert config.db_timeout == 0.5


def test_empty_block_list_blocks_nothing() -> None:
    assert Config.from_env({"HABITAT_BLOCKED_CALLSIGNS": ""}).blocked_callsigns == frozenset()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HABITAT_TRUSTED_PROXIES", "-1"),
        ("HABITAT_TRUSTED_PROXIES", "one"),
        ("HABITAT_MAX_BODY", "0"),
        ("HABITAT_SQLITE_SYNCHRONOUS", "SOMETIMES"),
        ("HABITAT_DB_TIMEOUT", "-3"),
        ("HABITAT_DB_TIMEOUT", "nan"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})


def test_server_batch_size_must_be_a_whole_number(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from habitat_http.config import ServerConfig

    path = tmp_path / "s.toml"
    path.write_text("batch_size = 0.5\n")
    with pytest.raises(ConfigError, match="batch_size"):
        ServerConfig.from_file(str(path))
