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


def test_one_function_opens_the_store_the_settings_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from habitat_http.config import store_from_config
    from habitat_http.store.sqlite import SQLiteStore

    config = Config(
        db_url=f"sqlite:///{tmp_path}/h.db", sqlite_synchronous="NORMAL", db_timeout=0.5
    )
    store = store_from_config(config)
    assert isinstance(store, SQLiteStore)
    assert (store.synchronous, store.timeout, store.read_only) == ("NORMAL", 0.5, False)
    assert store_from_config(config, read_only=True).read_only
    assert list(tmp_path.iterdir()) == []  # opening does no I/O


@pytest.mark.parametrize("source", ["HABITAT_DB", "--db"])
def test_an_unsupported_url_is_named_by_where_it_came_from(source: str) -> None:
    from habitat_http.config import store_from_config

    with pytest.raises(ConfigError, match=f"^{source} must be a sqlite:/// or postgresql://"):
        store_from_config(Config(db_url="mysql://nope", db_source=source))


def test_the_store_knows_no_settings() -> None:
    # store/ raises its own errors (UnsupportedURL, BadURL); callers word them.
    import ast
    from pathlib import Path

    from habitat_http.store import BadURL, StoreError, UnsupportedURL, open_store

    root = Path(__file__).resolve().parent.parent / "habitat_http"
    for path in (root / "store").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "config" not in (node.module or ""), path
    with pytest.raises(UnsupportedURL) as raised:
        open_store("mysql://nope")
    assert isinstance(raised.value, BadURL) and isinstance(raised.value, StoreError)
    assert raised.value.url == "mysql://nope"


def test_only_config_reads_the_environment() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "habitat_http"
    readers = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p != root / "config.py"
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
        and node.attr in ("environ", "environb", "getenv")
    ]
    assert readers == []
