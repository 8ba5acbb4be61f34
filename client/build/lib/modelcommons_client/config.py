"""Where the client finds its server and token.

`MC_URL` and `MC_TOKEN` win over the config file, `~/.config/modelcommons/config.toml` (under `$XDG_CONFIG_HOME`
when that is set; `MC_CONFIG` names another file). `mc login` writes the file with mode 0600."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    explicit = os.environ.get("MC_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "modelcommons" / "config.toml"


def cache_dir() -> Path:
    """Where resumable uploads remember their sessions (`$XDG_CACHE_HOME/modelcommons`, or `MC_CACHE_DIR`)."""
    explicit = os.environ.get("MC_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "modelcommons"


@dataclass
class Settings:
    url: str
    token: str | None
    username: str | None = None
    source: str = "default"  # where the token came from: env, config or none


def read_file(path: Path | None = None) -> dict[str, str]:
    path = path or config_path()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        from .errors import ConfigError

        raise ConfigError(f"cannot read the config file {path}: {exc}") from exc
    return {str(k): str(v) for k, v in data.items() if isinstance(v, (str, int))}


def load(url: str | None = None, token: str | None = None) -> Settings:
    """The settings in force: explicit arguments, then MC_URL / MC_TOKEN, then the config file."""
    stored = read_file()
    env_url, env_token = os.environ.get("MC_URL"), os.environ.get("MC_TOKEN")
    chosen_url = url or env_url or stored.get("url") or DEFAULT_URL
    if token:
        chosen_token, source = token, "argument"
    elif env_token:
        chosen_token, source = env_token, "env"
    elif stored.get("token"):
        chosen_token, source = stored["token"], "config"
    else:
        chosen_token, source = None, "none"
    return Settings(url=chosen_url.rstrip("/"), token=chosen_token, username=stored.get("username"), source=source)


def write(values: dict[str, str], path: Path | None = None) -> Path:
    """Write the config file, readable by its owner only (0600; its folder 0700)."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = tomli_w.dumps({k: v for k, v in values.items() if v is not None}).encode()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path
